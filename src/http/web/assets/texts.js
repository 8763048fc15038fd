// The page's own words, Polish first (seed 000), then English and Russian. The API's messages
// come already translated: every request sends Accept-Language.

export const TEXTS = {
  pl: {
    welcome: "Witaj w bramie", tabLogin: "Logowanie", tabRegister: "Rejestracja", tabCompany: "Konto firmowe",
    tabForgot: "Nie pamiętam hasła", username: "Nazwa użytkownika lub e-mail", usernameOnly: "Nazwa użytkownika",
    password: "Hasło", login: "Zaloguj", register: "Zarejestruj", sendLink: "Wyślij link",
    passwordHint: "8–30 znaków: wielka i mała litera, cyfra i symbol", activateTitle: "Aktywacja konta firmowego",
    name: "Imię", surname: "Nazwisko", newPassword: "Nowe hasło", activate: "Aktywuj", resetTitle: "Nowe hasło",
    setPassword: "Ustaw hasło", myAccount: "Moje konto", logout: "Wyloguj", logoutAll: "Wyloguj wszędzie",
    actions: "Akcje", fetchMe: "Pobierz moje dane", members: "Rejestr członków", addMember: "Dodaj członka",
    exportCsv: "Eksport CSV", exportXlsx: "Eksport Excel", reveal: "Pokaż", conceal: "Ukryj", revealPesel: "Pokaż PESEL", concealPesel: "Ukryj PESEL", search: "Szukaj", searchPlaceholder: "Szukaj: imię, nazwisko, miejscowość, e-mail",
    voivodeship: "Województwo", allVoivodeships: "Wszystkie województwa", city: "Miejscowość", actionsCol: "Akcje",
    prev: "‹ Poprzednia", next: "Następna ›", member: "Członek", education: "Wykształcenie", street: "Ulica",
    houseNumber: "Nr domu / lokalu", postalCode: "Kod pocztowy", phone: "Telefon", cancel: "Anuluj", save: "Zapisz",
    delete: "Usuń", edit: "Edytuj", switchLanguage: "Zmień język na angielski", result: "Wynik",
    loggedInAs: "Zalogowano:", notLoggedIn: "Nie zalogowano", role: "Rola", since: "Konto od",
    roleUser: "użytkownik", roleModerator: "moderator", roleAdmin: "administrator", roleOwner: "właściciel",
    welcomeBack: "Zalogowano", somethingWrong: "Coś poszło nie tak", noRefreshToken: "Brak tokenu odświeżania: zaloguj się",
    refreshed: "Sesja odświeżona", sessionEnded: "Sesja wygasła: zaloguj się ponownie", csrfReady: "Nowy token CSRF gotowy",
    activated: "Konto aktywne. Witamy!", linkWithoutToken: "Ten link nie zawiera tokenu; użyj linku z e-maila",
    noMembers: "Brak członków", page: "Strona", membersCount: "członków", memberSaved: "Zapisano zmiany",
    memberAdded: "Dodano członka", confirmDelete: "Usunąć członka",
  },
  en: {
    welcome: "Welcome to brama", tabLogin: "Log in", tabRegister: "Register", tabCompany: "Company account",
    tabForgot: "Forgot password", username: "Username or email", usernameOnly: "Username",
    password: "Password", login: "Log in", register: "Register", sendLink: "Send the link",
    passwordHint: "8–30 characters: upper- and lower-case letter, digit and symbol", activateTitle: "Activate your company account",
    name: "First name", surname: "Surname", newPassword: "New password", activate: "Activate", resetTitle: "New password",
    setPassword: "Set the password", myAccount: "My account", logout: "Log out", logoutAll: "Log out everywhere",
    actions: "Actions", fetchMe: "Fetch my data", members: "Member register", addMember: "Add a member",
    exportCsv: "Export CSV", exportXlsx: "Export Excel", reveal: "Show", conceal: "Hide", revealPesel: "Show PESEL", concealPesel: "Hide PESEL", search: "Search", searchPlaceholder: "Search: name, surname, city, email",
    voivodeship: "Voivodeship", allVoivodeships: "All voivodeships", city: "City", actionsCol: "Actions",
    prev: "‹ Previous", next: "Next ›", member: "Member", education: "Education", street: "Street",
    houseNumber: "House / flat no.", postalCode: "Postal code", phone: "Phone", cancel: "Cancel", save: "Save",
    delete: "Delete", edit: "Edit", switchLanguage: "Switch the language to Polish", result: "Result",
    loggedInAs: "Logged in:", notLoggedIn: "Not logged in", role: "Role", since: "Account since",
    roleUser: "user", roleModerator: "moderator", roleAdmin: "admin", roleOwner: "owner",
    welcomeBack: "Logged in", somethingWrong: "Something went wrong", noRefreshToken: "No refresh token: please log in",
    refreshed: "Session refreshed", sessionEnded: "The session has ended: please log in again", csrfReady: "A new CSRF token is ready",
    activated: "Your account is active. Welcome!", linkWithoutToken: "This link has no token; use the link from the email",
    noMembers: "No members", page: "Page", membersCount: "members", memberSaved: "Changes saved",
    memberAdded: "Member added", confirmDelete: "Delete the member",
  },
};

export const VOIVODESHIPS = [
  "Dolnośląskie", "Kujawsko-pomorskie", "Lubelskie", "Lubuskie", "Łódzkie", "Małopolskie", "Mazowieckie", "Opolskie",
  "Podkarpackie", "Podlaskie", "Pomorskie", "Śląskie", "Świętokrzyskie", "Warmińsko-mazurskie", "Wielkopolskie",
  "Zachodniopomorskie",
];

export const EDUCATION = ["Podstawowe", "Gimnazjalne", "Zasadnicze zawodowe", "Branżowe", "Średnie", "Policealne", "Wyższe"];
