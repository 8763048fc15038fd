# brama messages in Polish (Fluent). Every catalog has the same keys; a test checks it.

registered = Użytkownik został zarejestrowany!
username-taken = Błąd! Nazwa użytkownika jest już zajęta!
email-taken = Błąd! Adres e-mail jest już zajęty!
phone-taken = Błąd! Numer telefonu jest już zajęty!
invalid-credentials = Nieprawidłowa nazwa użytkownika lub hasło
authorized = Autoryzowano
token-expired = Brak autoryzacji! Token dostępu wygasł!
unauthorized = Brak autoryzacji!
no-token = Nie podano tokenu!
refresh-unknown = Ten token odświeżania nie istnieje w bazie danych
refresh-expired = Token odświeżania wygasł. Zaloguj się ponownie
refresh-reused = Token odświeżania został już użyty; sesja została zakończona. Zaloguj się ponownie
refresh-rotated = Token odświeżania został właśnie wymieniony; użyj najnowszego
logged-out = Wylogowano!
logged-out-all = Wylogowano ze wszystkich sesji!
session-revoked = Sesja została zakończona
password-changed = Hasło zostało zmienione!
wrong-password = Obecne hasło jest nieprawidłowe
last-owner = Jesteś ostatnim właścicielem organizacji: najpierw nadaj rolę właściciela innemu kontu
invalid-code = Nieprawidłowy lub już użyty kod
mfa-token-invalid = Krok logowania wygasł lub został już użyty: zaloguj się ponownie
mfa-required = Wymagany drugi składnik
mfa-reset = Drugie składniki konta zostały usunięte, a jego sesje zakończone
mfa-enrollment-required = Twoja rola wymaga drugiego składnika: najpierw go skonfiguruj
totp-enabled = Weryfikacja dwuetapowa aplikacją uwierzytelniającą jest już włączona: najpierw ją wyłącz
totp-not-started = Najpierw rozpocznij konfigurację aplikacji uwierzytelniającej
totp-disabled = Weryfikacja dwuetapowa została wyłączona
credential-malformed = Odpowiedź klucza dostępu jest nieprawidłowa
passkey-invalid = Klucz dostępu nie został przyjęty
passkey-rejected = Nie udało się zarejestrować klucza dostępu; zacznij od nowa
passkey-exists = Ten klucz dostępu jest już zarejestrowany
no-passkey = Konto nie ma klucza dostępu
passkey-removed = Klucz dostępu został usunięty
reauthentication-required = Zaloguj się ponownie, aby zmienić klucze dostępu (logowanie sprzed najwyżej 15 minut)
account-deleted = Twoje konto zostało usunięte
validation-failed = Błędne dane
rate-limited = Zbyt wiele prób, spróbuj później
database-unavailable = Baza danych nie odpowiada, spróbuj za chwilę
storage-full = Serwer nie może teraz niczego zapisać (brak miejsca na dysku), spróbuj później
busy = Serwer jest zajęty, spróbuj za chwilę
csrf-missing = Brak tokenu CSRF: wyślij nagłówek sessionId
csrf-invalid = Token CSRF się nie zgadza
cross-site = Odrzucono żądanie z innej witryny
not-found = Nie znaleziono.
method-not-allowed = Niedozwolona metoda
forbidden = Brak uprawnień
invalid-json = Treść żądania nie jest poprawnym JSON-em
body-too-large = Treść żądania jest za duża
unsupported-media-type = Wyślij treść jako application/json
internal = Coś poszło nie tak po naszej stronie, spróbuj później
reset-requested = Jeśli konto używa tego adresu, wysłaliśmy na niego link do zmiany hasła
reset-done = Hasło zostało zmienione! Zaloguj się
require-moderator = Wymagana rola moderatora!
require-admin = Wymagana rola administratora!
require-owner = Wymagana rola właściciela!
cannot-change-self = Nie możesz zmienić własnej roli ani statusu
invalid-query = Nieprawidłowe parametry zapytania
member-not-found = Nie znaleziono członka.
version-conflict = Dane członka zmieniły się w międzyczasie; odśwież je i spróbuj ponownie
member-deleted = Członek został usunięty!
import-failed = Nic nie zaimportowano: popraw wiersze wymienione w errors
json-object-expected = Treść żądania musi być obiektem JSON
nul-character = nie może zawierać znaku NUL
reset-invalid = Ten link do zmiany hasła jest nieprawidłowy, użyty lub wygasł
problem-taken = jest już w użyciu
problem-type = ma zły typ; wyślij tekst
problem-unknown = nie jest znaną kolumną
problem-required = jest wymagane
problem-length = musi mieć od { $min } do { $max } znaków
problem-characters = zawiera niedozwolone znaki
problem-format = ma nieprawidłowy format
problem-password-classes = musi mieć co najmniej jedną wielką literę, jedną małą, cyfrę i symbol
problem-common-password = jest zbyt popularne; wybierz inne
problem-message = { $field }: { $detail }
email-reset-subject = Zmiana hasła w bramie
email-reset-body = Ktoś poprosił o zmianę hasła do Twojego konta.

    Aby ustawić nowe hasło, otwórz ten link w ciągu godziny:
    { $link }

    Jeśli to nie Ty, zignoruj tę wiadomość; hasło pozostanie bez zmian.
activation-invalid = Ten link aktywacyjny jest nieprawidłowy, użyty lub wygasł
company-created = Konto zostało utworzone. Wysłaliśmy e-mail aktywacyjny.
invalid-email-or-password = Nieprawidłowy e-mail lub hasło
activation-resent = Jeśli konto oczekujące na aktywację używa tego adresu, wysłaliśmy nowy link
success = Gotowe
email-activation-subject = Aktywuj konto w bramie
email-activation-body = Konto Twojej firmy zostało utworzone.

    Aby ustawić hasło i aktywować konto, otwórz ten link w ciągu 48 godzin:
    { $link }

    Jeśli to nie Ty zakładałeś konto, zignoruj tę wiadomość.
email-change-requested = Wysłaliśmy link na nowy adres: adres zmieni się, gdy go otworzysz (w ciągu 24 godzin)
email-changed = Adres e-mail został zmieniony; pozostałe sesje zakończono
email-token-invalid = Ten link potwierdzający adres e-mail jest nieprawidłowy, użyty lub wygasł
email-email-change-subject = Potwierdź nowy adres e-mail w bramie
email-email-change-body = Ktoś chce używać tego adresu w swoim koncie w bramie.

    Aby go potwierdzić, otwórz ten link w ciągu 24 godzin:
    { $link }

    Jeśli to nie Ty, zignoruj tę wiadomość; nic się nie zmieni.
email-email-notice-subject = Zmiana adresu e-mail w bramie
email-email-notice-body = Ktoś poprosił o zmianę adresu e-mail Twojego konta w bramie na inny.
    Adres zmieni się dopiero po otwarciu linku wysłanego na nowy adres.

    Jeśli to nie Ty, zaloguj się i zmień hasło: { $link }
oidc-client-removed = Aplikacja została usunięta: nie może już nikogo logować
