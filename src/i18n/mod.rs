//! Message catalogs: every sentence a person reads, in English, Polish and Russian.

use axum::http::HeaderMap;

use crate::domain::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Pl,
    Ru,
}

impl Lang {
    /// Picks the best supported language from `Accept-Language`, or `default`.
    pub fn negotiate(headers: &HeaderMap, default: Lang) -> Lang {
        let Some(header) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return default;
        };
        match accept_language::intersection(header, &["en", "pl", "ru"])
            .first()
            .map(String::as_str)
        {
            Some("en") => Lang::En,
            Some("pl") => Lang::Pl,
            Some("ru") => Lang::Ru,
            _ => default,
        }
    }
}

/// Sentences of the Membership API and the cross-cutting errors. The English texts of the seed's
/// messages are fixed: clients written against seed 001 compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    Registered,
    UsernameTaken,
    EmailTaken,
    PhoneTaken,
    InvalidCredentials,
    Authorized,
    TokenExpired,
    Unauthorized,
    NoToken,
    RefreshUnknown,
    RefreshExpired,
    RefreshReused,
    RefreshRotated,
    LoggedOut,
    LoggedOutAll,
    SessionRevoked,
    PasswordChanged,
    WrongPassword,
    ValidationFailed,
    RateLimited,
    Busy,
    CsrfMissing,
    CsrfInvalid,
    CrossSite,
    NotFound,
    MethodNotAllowed,
    Forbidden,
    InvalidJson,
    BodyTooLarge,
    UnsupportedMediaType,
    Internal,
    ResetRequested,
    ResetDone,
    ResetInvalid,
    RequireModerator,
    RequireAdmin,
    RequireOwner,
    CannotChangeSelf,
    InvalidQuery,
    MemberNotFound,
    VersionConflict,
    MemberDeleted,
    ImportFailed,
    JsonObjectExpected,
    NulCharacter,
}

impl Msg {
    pub fn text(self, lang: Lang) -> &'static str {
        use Lang::*;
        use Msg::*;
        match (self, lang) {
            (Registered, En) => "User was registered successfully!",
            (Registered, Pl) => "Użytkownik został zarejestrowany!",
            (Registered, Ru) => "Пользователь успешно зарегистрирован!",
            (UsernameTaken, En) => "Failed! Username is already in use!",
            (UsernameTaken, Pl) => "Błąd! Nazwa użytkownika jest już zajęta!",
            (UsernameTaken, Ru) => "Ошибка! Имя пользователя уже занято!",
            (EmailTaken, En) => "Failed! Email is already in use!",
            (EmailTaken, Pl) => "Błąd! Adres e-mail jest już zajęty!",
            (EmailTaken, Ru) => "Ошибка! Адрес почты уже используется!",
            (PhoneTaken, En) => "Failed! Phone is already in use!",
            (PhoneTaken, Pl) => "Błąd! Numer telefonu jest już zajęty!",
            (PhoneTaken, Ru) => "Ошибка! Телефон уже используется!",
            (InvalidCredentials, En) => "Invalid username or password",
            (InvalidCredentials, Pl) => "Nieprawidłowa nazwa użytkownika lub hasło",
            (InvalidCredentials, Ru) => "Неверное имя пользователя или пароль",
            (Authorized, En) => "Authorized",
            (Authorized, Pl) => "Autoryzowano",
            (Authorized, Ru) => "Авторизован",
            (TokenExpired, En) => "Unauthorized! Access Token was expired!",
            (TokenExpired, Pl) => "Brak autoryzacji! Token dostępu wygasł!",
            (TokenExpired, Ru) => "Не авторизован! Срок действия токена доступа истёк!",
            (Unauthorized, En) => "Unauthorized!",
            (Unauthorized, Pl) => "Brak autoryzacji!",
            (Unauthorized, Ru) => "Не авторизован!",
            (NoToken, En) => "No token provided!",
            (NoToken, Pl) => "Nie podano tokenu!",
            (NoToken, Ru) => "Токен не передан!",
            (RefreshUnknown, En) => "This refresh token doesn't exist in database",
            (RefreshUnknown, Pl) => "Ten token odświeżania nie istnieje w bazie danych",
            (RefreshUnknown, Ru) => "Такого токена обновления нет в базе данных",
            (RefreshExpired, En) => "Refresh token was expired. Please make a new signin request",
            (RefreshExpired, Pl) => "Token odświeżania wygasł. Zaloguj się ponownie",
            (RefreshExpired, Ru) => "Срок действия токена обновления истёк. Войдите заново",
            (RefreshReused, En) => {
                "Refresh token was already used; the session has been ended. Please sign in again"
            }
            (RefreshReused, Pl) => {
                "Token odświeżania został już użyty; sesja została zakończona. Zaloguj się ponownie"
            }
            (RefreshReused, Ru) => {
                "Токен обновления уже был использован; сеанс завершён. Войдите заново"
            }
            (RefreshRotated, En) => "Refresh token was just rotated; use the newest one",
            (RefreshRotated, Pl) => "Token odświeżania został właśnie wymieniony; użyj najnowszego",
            (RefreshRotated, Ru) => "Токен обновления только что заменён; используйте новый",
            (LoggedOut, En) => "You've been signed out!",
            (LoggedOut, Pl) => "Wylogowano!",
            (LoggedOut, Ru) => "Вы вышли из системы!",
            (LoggedOutAll, En) => "You've been signed out of every session!",
            (LoggedOutAll, Pl) => "Wylogowano ze wszystkich sesji!",
            (LoggedOutAll, Ru) => "Вы вышли из всех сеансов!",
            (SessionRevoked, En) => "Session was ended",
            (SessionRevoked, Pl) => "Sesja została zakończona",
            (SessionRevoked, Ru) => "Сеанс завершён",
            (PasswordChanged, En) => "Password was changed successfully!",
            (PasswordChanged, Pl) => "Hasło zostało zmienione!",
            (PasswordChanged, Ru) => "Пароль успешно изменён!",
            (WrongPassword, En) => "Current password is wrong",
            (WrongPassword, Pl) => "Obecne hasło jest nieprawidłowe",
            (WrongPassword, Ru) => "Текущий пароль неверен",
            (ValidationFailed, En) => "Validation failed",
            (ValidationFailed, Pl) => "Błędne dane",
            (ValidationFailed, Ru) => "Ошибка проверки данных",
            (RateLimited, En) => "Too many requests, try again later",
            (RateLimited, Pl) => "Zbyt wiele prób, spróbuj później",
            (RateLimited, Ru) => "Слишком много запросов, попробуйте позже",
            (Busy, En) => "The server is busy, try again in a moment",
            (Busy, Pl) => "Serwer jest zajęty, spróbuj za chwilę",
            (Busy, Ru) => "Сервер занят, попробуйте через минуту",
            (CsrfMissing, En) => "CSRF token missing: send the sessionId header",
            (CsrfMissing, Pl) => "Brak tokenu CSRF: wyślij nagłówek sessionId",
            (CsrfMissing, Ru) => "Нет токена CSRF: передайте заголовок sessionId",
            (CsrfInvalid, En) => "CSRF token does not match",
            (CsrfInvalid, Pl) => "Token CSRF się nie zgadza",
            (CsrfInvalid, Ru) => "Токен CSRF не совпадает",
            (CrossSite, En) => "Cross-site request refused",
            (CrossSite, Pl) => "Odrzucono żądanie z innej witryny",
            (CrossSite, Ru) => "Межсайтовый запрос отклонён",
            (NotFound, En) => "Not found.",
            (NotFound, Pl) => "Nie znaleziono.",
            (NotFound, Ru) => "Не найдено.",
            (MethodNotAllowed, En) => "Method not allowed",
            (MethodNotAllowed, Pl) => "Niedozwolona metoda",
            (MethodNotAllowed, Ru) => "Метод не поддерживается",
            (Forbidden, En) => "Forbidden",
            (Forbidden, Pl) => "Brak uprawnień",
            (Forbidden, Ru) => "Доступ запрещён",
            (InvalidJson, En) => "The request body is not valid JSON",
            (InvalidJson, Pl) => "Treść żądania nie jest poprawnym JSON-em",
            (InvalidJson, Ru) => "Тело запроса не является корректным JSON",
            (BodyTooLarge, En) => "The request body is too large",
            (BodyTooLarge, Pl) => "Treść żądania jest za duża",
            (BodyTooLarge, Ru) => "Тело запроса слишком большое",
            (UnsupportedMediaType, En) => "Send the body as application/json",
            (UnsupportedMediaType, Pl) => "Wyślij treść jako application/json",
            (UnsupportedMediaType, Ru) => "Передайте тело как application/json",
            (Internal, En) => "Something went wrong on our side, try again later",
            (Internal, Pl) => "Coś poszło nie tak po naszej stronie, spróbuj później",
            (Internal, Ru) => "Возникла ошибка, попробуйте позже.",
            (ResetRequested, En) => {
                "If an account uses this address, a link to reset its password is on its way"
            }
            (ResetRequested, Pl) => {
                "Jeśli konto używa tego adresu, wysłaliśmy na niego link do zmiany hasła"
            }
            (ResetRequested, Ru) => {
                "Если этот адрес принадлежит аккаунту, на него отправлена ссылка для сброса пароля"
            }
            (ResetDone, En) => "Password was reset successfully! Please sign in",
            (ResetDone, Pl) => "Hasło zostało zmienione! Zaloguj się",
            (ResetDone, Ru) => "Пароль успешно сброшен! Войдите заново",
            (RequireModerator, En) => "Require Moderator Role!",
            (RequireModerator, Pl) => "Wymagana rola moderatora!",
            (RequireModerator, Ru) => "Требуется роль модератора!",
            (RequireAdmin, En) => "Require Admin Role!",
            (RequireAdmin, Pl) => "Wymagana rola administratora!",
            (RequireAdmin, Ru) => "Требуется роль администратора!",
            (RequireOwner, En) => "Require Owner Role!",
            (RequireOwner, Pl) => "Wymagana rola właściciela!",
            (RequireOwner, Ru) => "Требуется роль владельца!",
            (CannotChangeSelf, En) => "You cannot change your own role or status",
            (CannotChangeSelf, Pl) => "Nie możesz zmienić własnej roli ani statusu",
            (CannotChangeSelf, Ru) => "Нельзя изменить собственную роль или статус",
            (InvalidQuery, En) => "The query parameters are not valid",
            (InvalidQuery, Pl) => "Nieprawidłowe parametry zapytania",
            (InvalidQuery, Ru) => "Неверные параметры запроса",
            (MemberNotFound, En) => "Member not found.",
            (MemberNotFound, Pl) => "Nie znaleziono członka.",
            (MemberNotFound, Ru) => "Участник не найден.",
            (VersionConflict, En) => {
                "The member was changed in the meantime; reload it and try again"
            }
            (VersionConflict, Pl) => {
                "Dane członka zmieniły się w międzyczasie; odśwież je i spróbuj ponownie"
            }
            (VersionConflict, Ru) => {
                "Данные участника уже изменены; обновите их и попробуйте снова"
            }
            (MemberDeleted, En) => "Member was deleted successfully!",
            (MemberDeleted, Pl) => "Członek został usunięty!",
            (MemberDeleted, Ru) => "Участник успешно удалён!",
            (ImportFailed, En) => "Nothing was imported: fix the rows listed in errors",
            (ImportFailed, Pl) => "Nic nie zaimportowano: popraw wiersze wymienione w errors",
            (ImportFailed, Ru) => "Ничего не импортировано: исправьте строки из errors",
            (JsonObjectExpected, En) => "The request body must be a JSON object",
            (JsonObjectExpected, Pl) => "Treść żądania musi być obiektem JSON",
            (JsonObjectExpected, Ru) => "Тело запроса должно быть объектом JSON",
            (NulCharacter, En) => "must not contain the NUL character",
            (NulCharacter, Pl) => "nie może zawierać znaku NUL",
            (NulCharacter, Ru) => "не должно содержать символ NUL",
            (ResetInvalid, En) => "This password reset link is invalid, used or expired",
            (ResetInvalid, Pl) => "Ten link do zmiany hasła jest nieprawidłowy, użyty lub wygasł",
            (ResetInvalid, Ru) => {
                "Ссылка для сброса пароля недействительна, использована или устарела"
            }
        }
    }
}

/// One field's problem as a sentence starting with the field's JSON name.
pub fn problem_text(field: &str, problem: Problem, lang: Lang) -> String {
    use Lang::*;
    let detail = match (problem, lang) {
        (Problem::Taken, En) => "is already in use".to_string(),
        (Problem::Taken, Pl) => "jest już zajęte".to_string(),
        (Problem::Taken, Ru) => "уже используется".to_string(),
        (Problem::Type, En) => "has the wrong type; send text".to_string(),
        (Problem::Type, Pl) => "ma zły typ; wyślij tekst".to_string(),
        (Problem::Type, Ru) => "неверный тип; передайте строку".to_string(),
        (Problem::Unknown, En) => "is not a known column".to_string(),
        (Problem::Unknown, Pl) => "nie jest znaną kolumną".to_string(),
        (Problem::Unknown, Ru) => "неизвестный столбец".to_string(),
        (Problem::Required, En) => "is required".to_string(),
        (Problem::Required, Pl) => "jest wymagane".to_string(),
        (Problem::Required, Ru) => "обязательное поле".to_string(),
        (Problem::Length { min, max }, En) => format!("must be {min} to {max} characters long"),
        (Problem::Length { min, max }, Pl) => format!("musi mieć od {min} do {max} znaków"),
        (Problem::Length { min, max }, Ru) => format!("длина от {min} до {max} символов"),
        (Problem::Characters, En) => "contains characters that are not allowed".to_string(),
        (Problem::Characters, Pl) => "zawiera niedozwolone znaki".to_string(),
        (Problem::Characters, Ru) => "содержит недопустимые символы".to_string(),
        (Problem::Format, En) => "has the wrong format".to_string(),
        (Problem::Format, Pl) => "ma nieprawidłowy format".to_string(),
        (Problem::Format, Ru) => "имеет неверный формат".to_string(),
        (Problem::PasswordClasses, En) => {
            "needs at least one upper-case letter, one lower-case letter, one digit and one symbol"
                .to_string()
        }
        (Problem::PasswordClasses, Pl) => {
            "musi mieć co najmniej jedną wielką literę, jedną małą, cyfrę i symbol".to_string()
        }
        (Problem::PasswordClasses, Ru) => {
            "минимум 1 большая буква, 1 маленькая буква, 1 цифра и 1 символ".to_string()
        }
        (Problem::CommonPassword, En) => "is too common; choose another".to_string(),
        (Problem::CommonPassword, Pl) => "jest zbyt popularne; wybierz inne".to_string(),
        (Problem::CommonPassword, Ru) => "слишком распространённый; выберите другой".to_string(),
    };
    format!("{field}: {detail}")
}

/// The password-reset email: (subject, body).
pub fn reset_email(lang: Lang, link: &str) -> (String, String) {
    match lang {
        Lang::En => (
            "Reset your brama password".into(),
            format!(
                "Someone asked to reset the password of your account.\n\nTo choose a new password, open this link within an hour:\n{link}\n\nIf it was not you, ignore this email; your password stays as it is.\n"
            ),
        ),
        Lang::Pl => (
            "Zmiana hasła w bramie".into(),
            format!(
                "Ktoś poprosił o zmianę hasła do Twojego konta.\n\nAby ustawić nowe hasło, otwórz ten link w ciągu godziny:\n{link}\n\nJeśli to nie Ty, zignoruj tę wiadomość; hasło pozostanie bez zmian.\n"
            ),
        ),
        Lang::Ru => (
            "Сброс пароля brama".into(),
            format!(
                "Кто-то запросил сброс пароля вашего аккаунта.\n\nЧтобы задать новый пароль, откройте ссылку в течение часа:\n{link}\n\nЕсли это были не вы, просто проигнорируйте письмо; пароль останется прежним.\n"
            ),
        ),
    }
}
