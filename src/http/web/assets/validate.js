// The member rules of SPEC §10, checked as one types; the server checks them again.

const WEIGHTS = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
const MESSAGES = {
  pl: {
    required: "Pole wymagane",
    tooLong: "Najwyżej 100 znaków",
    peselDigits: "PESEL to 11 cyfr",
    peselChecksum: "Błędna cyfra kontrolna PESEL",
    peselDate: "PESEL zawiera nieistniejącą datę urodzenia",
    postal: "Kod pocztowy w formacie 00-000",
    email: "Nieprawidłowy adres e-mail",
    phone: "9 cyfr, opcjonalnie +48; spacje lub myślniki dozwolone",
  },
  en: {
    required: "Required",
    tooLong: "At most 100 characters",
    peselDigits: "A PESEL is 11 digits",
    peselChecksum: "The PESEL check digit is wrong",
    peselDate: "The PESEL holds a date of birth that does not exist",
    postal: "Postal code as 00-000",
    email: "Not a valid email address",
    phone: "9 digits, optionally +48; spaces or dashes allowed",
  },
};

/** Why a PESEL is invalid (a message key), or null. */
export function peselProblem(pesel) {
  if (!/^\d{11}$/.test(pesel)) return "peselDigits";
  const d = [...pesel].map(Number);
  const sum = WEIGHTS.reduce((acc, w, i) => acc + w * d[i], 0);
  if ((10 - (sum % 10)) % 10 !== d[10]) return "peselChecksum";
  const mm = d[2] * 10 + d[3];
  const century = [1900, 2000, 2100, 2200, 1800][Math.floor(mm / 20)];
  const month = mm % 20;
  const year = century + d[0] * 10 + d[1];
  const day = d[4] * 10 + d[5];
  const date = new Date(Date.UTC(year, month - 1, day));
  const real = month >= 1 && month <= 12 && date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
  return real ? null : "peselDate";
}

/** Problems by field, in the language given; fields without a problem are absent. */
export function checkMember(values, lang) {
  const m = MESSAGES[lang] ?? MESSAGES.pl;
  const problems = {};
  for (const [field, value] of Object.entries(values)) {
    if (!value) problems[field] = m.required;
    else if (value.length > 100) problems[field] = m.tooLong;
  }
  if (values.pesel) {
    const p = peselProblem(values.pesel);
    if (p) problems.pesel = m[p];
  }
  if (values.kodpocztowy && !/^\d{2}-\d{3}$/.test(values.kodpocztowy)) problems.kodpocztowy = m.postal;
  if (values.email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(values.email)) problems.email = m.email;
  if (values.tel && !/^(\+48[ -]?)?\d(?:[ -]?\d){8}$/.test(values.tel)) problems.tel = m.phone;
  return problems;
}
