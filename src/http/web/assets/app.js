// brama's page (seed 000): the register / log-in flow with a CSRF pair and an HttpOnly access
// cookie, the refresh token in sessionStorage, the member register for moderators and admins,
// and the second factor (SPEC §13): the login's second step, passkey sign-in, and the account's
// authenticator app, recovery codes and passkeys.

import { TEXTS, ACTIONS, VOIVODESHIPS, EDUCATION } from "./texts.js";
import { checkMember } from "./validate.js";
import { passkeysAvailable, createPasskey, getPasskey } from "./webauthn.js";

const $ = (id) => document.getElementById(id);
const REFRESH_KEY = "refreshToken";
const PAGE_SIZE = 20;

const state = {
  lang: localStorage.getItem("lang") === "en" ? "en" : "pl",
  csrf: null,
  me: null,
  refreshing: null,
  list: { page: 1, sort: "nazwisko", order: "asc", q: "", woj: "", total: 0 },
  editing: null,
  /** Which view the address shows: home, activate, reset, confirm-email, not-found. */
  view: "home",
  /** The login's second step: {token, methods} from the 401 `mfa_required`. */
  mfa: null,
  /** GET /api/auth/mfa of the signed-in account. */
  factors: null,
  /** Recovery codes while they are shown (once). */
  recovery: null,
};

const t = (key) => TEXTS[state.lang][key] ?? TEXTS.pl[key] ?? key;

// ---- talking to the API -------------------------------------------------------------------

async function fetchCsrf() {
  const res = await fetch("/api/auth/csrf", { credentials: "same-origin", headers: { "accept-language": state.lang } });
  const body = await res.json();
  state.csrf = body.sessionId;
  return body;
}

function headers(json) {
  const h = { "accept-language": state.lang };
  if (state.csrf) h.sessionId = state.csrf;
  if (json) h["content-type"] = "application/json";
  return h;
}

/** Uses the refresh token once; concurrent callers share one rotation (a second use would be reuse). */
function refreshSession() {
  if (!state.refreshing) {
    state.refreshing = (async () => {
      const token = sessionStorage.getItem(REFRESH_KEY);
      if (!token) return false;
      if (!state.csrf) await fetchCsrf();
      const res = await fetch("/api/auth/refreshtoken", {
        method: "POST", credentials: "same-origin", headers: headers(true), body: JSON.stringify({ refreshToken: token }),
      });
      if (!res.ok) {
        sessionStorage.removeItem(REFRESH_KEY);
        return false;
      }
      const body = await res.json();
      sessionStorage.setItem(REFRESH_KEY, body.refreshToken);
      return true;
    })().finally(() => { state.refreshing = null; });
  }
  return state.refreshing;
}

/**
 * A request in browser mode. An expired access token (its cookie gone, or refused as expired)
 * is refreshed once and the request repeated, so the person does not notice.
 */
async function api(method, path, body, retried = false) {
  if (!state.csrf) await fetchCsrf();
  const res = await fetch(path, {
    method, credentials: "same-origin", headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!retried && (res.status === 401 || res.status === 403)) {
    const info = await res.clone().json().catch(() => ({}));
    if ((info.code === "token_expired" || info.code === "no_token") && sessionStorage.getItem(REFRESH_KEY)) {
      if (await refreshSession()) return api(method, path, body, true);
    }
    if (info.code === "csrf_missing" || info.code === "csrf_invalid") {
      await fetchCsrf();
      return api(method, path, body, true);
    }
  }
  return res;
}

async function json(res) {
  return res.json().catch(() => ({}));
}

// ---- messages -------------------------------------------------------------------------------

function say(kind, text, details = []) {
  const box = $("message");
  box.hidden = false;
  box.className = `message ${kind}`;
  box.setAttribute("role", kind === "bad" ? "alert" : "status");
  box.textContent = text;
  if (details.length) {
    const list = document.createElement("ul");
    for (const d of details) {
      const item = document.createElement("li");
      item.textContent = d;
      list.append(item);
    }
    box.append(list);
  }
}

/** Shows an API failure: the message, and each field's sentence next to its input if there is one. */
function fail(body, fieldPrefix = "") {
  const errors = body.errors ?? [];
  const listed = [];
  for (const e of errors) {
    const span = $(`err-${fieldPrefix}${e.field}`);
    // The API's sentence starts with the JSON field name; next to the field the label says it.
    const text = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
    if (span) {
      span.textContent = text;
      $(`${fieldPrefix ? fieldPrefix : "m-"}${e.field}`)?.setAttribute("aria-invalid", "true");
    } else {
      listed.push(e.message);
    }
  }
  // Every problem is shown at its field: the banner only says so, in the page's language.
  if (errors.length && !listed.length) return say("bad", t("checkFields"), body.msg ?? []);
  // The Company API answers {info, msg: [...]}.
  const text = body.message ?? body.info ?? t("somethingWrong");
  say("bad", text, [...listed, ...(body.msg ?? [])]);
}

function clearErrors(form) {
  for (const span of form.querySelectorAll(".error")) span.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function show(value) {
  $("output").textContent = typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

// ---- language -------------------------------------------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  $("lang").textContent = state.lang === "pl" ? "EN" : "PL";
  // The accessible name starts with what the button shows (WCAG 2.5.3).
  $("lang").setAttribute("aria-label", `${$("lang").textContent}: ${t("switchLanguage")}`);
  $("output").setAttribute("aria-label", t("result"));
  renderWho();
  translateEducation();
  if (state.mfa) secondStepHint();
  renderSecurity();
  for (const toggle of document.querySelectorAll("button.show-password")) toggle.relabel?.();
}

// ---- session --------------------------------------------------------------------------------

function renderWho() {
  const me = state.me;
  $("who").textContent = me ? `${t("loggedInAs")} ${me.username ?? me.email} · ${roleName(me.roles)}`
    : state.consentAccount ? `${t("loggedInAs")} ${state.consentAccount}` : t("notLoggedIn");
}

const RANK = { ROLE_USER: 0, ROLE_MODERATOR: 1, ROLE_ADMIN: 2, ROLE_OWNER: 3 };
const rank = (roles = []) => Math.max(0, ...roles.map((r) => RANK[r] ?? 0));
const roleName = (roles) => t(["roleUser", "roleModerator", "roleAdmin", "roleOwner"][rank(roles)]);

async function loadMe(quiet = false) {
  const res = await api("GET", "/api/auth/me");
  const body = await json(res);
  if (!res.ok) {
    state.me = null;
    renderSession();
    if (!quiet) fail(body);
    return null;
  }
  state.me = body;
  renderSession();
  return body;
}

function renderSession() {
  const me = state.me;
  renderWho();
  $("auth").hidden = Boolean(me);
  $("account").hidden = !me;
  // The seed's actions belong to the start page; my data and Refresh need a session, Csrf
  // (the first step of the seed's login) does not.
  $("actions").hidden = state.view !== "home";
  $("me").hidden = !me;
  $("refresh").hidden = !me;
  const dl = $("me-data");
  dl.replaceChildren();
  if (me) {
    for (const [key, value] of [["usernameOnly", me.username ?? "—"], ["E-mail", me.email], ["role", roleName(me.roles)], ["fullName", [me.name, me.surname].filter(Boolean).join(" ") || "—"], ["since", timeOf(me.createdAt)]]) {
      const dt = document.createElement("dt");
      dt.textContent = TEXTS.pl[key] ? t(key) : key;
      const dd = document.createElement("dd");
      dd.append(key === "E-mail" ? emailOf(value) : value);
      dl.append(dt, dd);
    }
  }
  $("security").hidden = !me;
  if (me) {
    loadSecurity();
    $("profile-name").value = me.name ?? "";
    $("profile-surname").value = me.surname ?? "";
    if ($("sessions-panel").open) loadSessions();
  }
  else {
    state.factors = null;
    hideRecovery();
    closeTotpEnrol();
  }
  announceView();
  const staff = me && rank(me.roles) >= 1;
  $("members").hidden = !staff;
  $("member-export").hidden = !(me && rank(me.roles) >= 2);
  const admin = Boolean(me && rank(me.roles) >= 2);
  $("accounts").hidden = !admin;
  $("journal").hidden = !admin;
  if (admin) loadAdmin();
  $("member-export-xlsx").hidden = $("member-export").hidden;
  if (staff) loadMembers();
}

async function loggedIn(body) {
  sessionStorage.setItem(REFRESH_KEY, body.refreshToken);
  // Signing in for another application (SPEC §14): back to its authorization, which now finds
  // this session.
  if (state.oidcRequest) {
    location.assign(`/oauth2/authorize/resume?request=${encodeURIComponent(state.oidcRequest)}`);
    return;
  }
  await loadMe();
  focusView();
  say("ok", `${t("welcomeBack")} ${body.username ?? body.email ?? ""}`.trim());
}

// ---- the seed's actions -----------------------------------------------------------------------

/** A refused login at its fields: the API's `username`/`password` errors, and "invalid username or
 * password" under the password with both fields marked (it does not say which one is wrong). */
function loginFailed(status, body, usernameId, passwordId) {
  const inputs = { username: usernameId, password: passwordId };
  const errors = body.errors?.length ? body.errors
    : status === 401 ? [{ field: "password", message: body.message }, { field: "username", message: "" }] : [];
  const placed = errors.filter((e) => inputs[e.field]);
  if (!placed.length || placed.length < errors.length) return fail(body);
  for (const e of placed) {
    const text = e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
    if (text) $(`err-${inputs[e.field]}`).textContent = text;
    $(inputs[e.field]).setAttribute("aria-invalid", "true");
  }
  say("bad", status === 401 ? body.message : t("checkFields"));
  $(passwordId).focus();
}

async function onLogin(event, usernameId, passwordId) {
  event.preventDefault();
  clearErrors(event.target);
  // The seed's flow: a CSRF pair first, then the credentials with its sessionId header.
  await fetchCsrf();
  const res = await api("POST", "/api/auth/login", { username: $(usernameId).value, password: $(passwordId).value });
  const body = await json(res);
  show({ status: res.status, ...body, refreshToken: body.refreshToken ? "…" : undefined, mfaToken: body.mfaToken ? "…" : undefined });
  if (res.status === 401 && body.code === "mfa_required") {
    $(passwordId).value = "";
    say("ok", body.message);
    return showSecondStep(body);
  }
  if (!res.ok) return loginFailed(res.status, body, usernameId, passwordId);
  $(passwordId).value = "";
  await loggedIn(body);
}

// ---- the second factor at login ---------------------------------------------------------------

function secondStepHint() {
  const m = state.mfa.methods;
  const passkey = m.includes("passkey") && passkeysAvailable();
  $("mfa-passkey").hidden = !passkey;
  $("mfa-step-hint").textContent = t(m.includes("totp") ? (passkey ? "mfaHintBoth" : "mfaHintTotp") : "mfaHintPasskey");
}

function showSecondStep(body) {
  state.mfa = { token: body.mfaToken, methods: body.methods ?? [] };
  $("auth").hidden = true;
  $("mfa-step").hidden = false;
  announceView();
  secondStepHint();
  $("mfa-code").value = "";
  $("mfa-code").focus();
}

function endSecondStep() {
  state.mfa = null;
  $("mfa-step").hidden = true;
  $("auth").hidden = Boolean(state.me);
  announceView();
}

/** The answer of a second step: signed in, or the reason (a spent ticket starts over). */
async function afterSecondStep(res) {
  const body = await json(res);
  if (!res.ok) {
    fail(body);
    if (body.code === "mfa_token_invalid") endSecondStep();
    return;
  }
  endSecondStep();
  await loggedIn(body);
}

async function onSecondStep(event) {
  event.preventDefault();
  const res = await api("POST", "/api/auth/login/mfa", { mfaToken: state.mfa.token, code: $("mfa-code").value.trim() });
  $("mfa-code").value = "";
  await afterSecondStep(res);
}

/** Runs a browser passkey ceremony; a refusal or cancel is a message, not an exception. */
async function withPasskey(ceremony) {
  try {
    return await ceremony();
  } catch (e) {
    say("bad", t("passkeyCancelled"));
    return null;
  }
}

async function onSecondStepPasskey() {
  const start = await api("POST", "/api/auth/login/passkey/start", { mfaToken: state.mfa.token });
  if (!start.ok) return afterSecondStep(start);
  const credential = await withPasskey(async () => getPasskey(await json(start)));
  if (!credential) return;
  await afterSecondStep(await api("POST", "/api/auth/login/passkey/finish", { mfaToken: state.mfa.token, credential }));
}

/** "Zaloguj kluczem dostępu": no name, no password; the authenticator offers its passkeys. */
async function onPasskeyLogin() {
  await fetchCsrf();
  const start = await api("POST", "/api/auth/passkey/start", {});
  const options = await json(start);
  if (!start.ok) return fail(options);
  const credential = await withPasskey(() => getPasskey(options));
  if (!credential) return;
  const res = await api("POST", "/api/auth/passkey/finish", { credential });
  const body = await json(res);
  if (!res.ok) return fail(body);
  await loggedIn(body);
}

// ---- Moje konto --------------------------------------------------------------------------------

/** Refusals that concern one field, by their code: where the page shows them. */
const FIELD_OF_CODE = { username_taken: "username", email_taken: "email" };

/** A form's answer: field errors next to their fields (a wrong current password, a name or
 * address in use too). */
function formFailed(body, prefix, passwordField, emailField = "email") {
  const field = body.code === "wrong_password" ? passwordField
    : body.code === "email_taken" ? emailField : FIELD_OF_CODE[body.code];
  if (field && !body.errors) body = { ...body, errors: [{ field, message: body.message }] };
  fail(body, prefix);
}

async function onProfileSave(event) {
  event.preventDefault();
  clearErrors($("profile-form"));
  const res = await api("PATCH", "/api/auth/me", { name: $("profile-name").value, surname: $("profile-surname").value });
  const body = await json(res);
  if (!res.ok) return formFailed(body, "profile-");
  state.me = { ...state.me, ...body };
  renderSession();
  say("ok", t("profileSaved"));
}

async function onPasswordSave(event) {
  event.preventDefault();
  clearErrors($("password-form"));
  const res = await api("POST", "/api/auth/password", { currentPassword: $("pw-currentPassword").value, newPassword: $("pw-newPassword").value });
  const body = await json(res);
  if (!res.ok) return formFailed(body, "pw-", "currentPassword");
  $("pw-currentPassword").value = "";
  $("pw-newPassword").value = "";
  say("ok", body.message);
}

async function onEmailSave(event) {
  event.preventDefault();
  clearErrors($("email-form"));
  const res = await api("POST", "/api/auth/email", { newEmail: $("em-newEmail").value.trim(), currentPassword: $("em-currentPassword").value });
  const body = await json(res);
  if (!res.ok) return formFailed(body, "em-", "currentPassword", "newEmail");
  $("em-currentPassword").value = "";
  say("ok", body.message);
}

async function loadSessions() {
  const res = await api("GET", "/api/auth/sessions");
  const body = await json(res);
  if (!res.ok) return fail(body);
  const list = $("session-list");
  list.replaceChildren();
  for (const s of body) {
    const item = document.createElement("li");
    const text = document.createElement("span");
    const device = document.createElement("strong");
    device.textContent = s.current ? t("thisDevice") : (s.userAgent ?? t("unknownDevice")).slice(0, 80);
    const when = document.createElement("span");
    when.className = "when";
    when.append(` · ${s.ip ?? "?"} · ${t("lastActive")} `, timeOf(s.lastUsedAt));
    text.append(device, when);
    item.append(text);
    if (!s.current) {
      const end = document.createElement("button");
      end.type = "button";
      end.className = "ghost";
      end.textContent = t("endSession");
      end.addEventListener("click", async () => {
        const r = await api("DELETE", `/api/auth/sessions/${encodeURIComponent(s.id)}`);
        const b = await json(r);
        if (!r.ok) return fail(b);
        say("ok", b.message);
        loadSessions();
      });
      item.append(end);
    }
    list.append(item);
  }
}

async function exportMe() {
  const res = await api("GET", "/api/auth/me/export");
  if (!res.ok) return fail(await json(res));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(await res.json(), null, 2)], { type: "application/json" }));
  link.download = state.lang === "pl" ? "brama-moje-dane.json" : "brama-my-data.json";
  link.click();
  URL.revokeObjectURL(link.href);
}

async function onDeleteMe(event) {
  event.preventDefault();
  clearErrors($("delete-me-form"));
  if (!(await confirmed(t("confirmDeleteMe")))) return;
  const res = await api("DELETE", "/api/auth/me", { password: $("del-password").value });
  const body = await json(res);
  if (!res.ok) return formFailed(body, "del-", "password");
  $("del-password").value = "";
  sessionStorage.removeItem(REFRESH_KEY);
  state.csrf = null;
  state.me = null;
  renderSession();
  say("ok", body.message);
}

// ---- Konta and Dziennik (admins) ---------------------------------------------------------------

const ROLES = ["user", "moderator", "admin", "owner"];
const roleKey = (roles) => ROLES[rank(roles)];
const accountName = (a) => a.username ?? a.email;

/** Loads the organization's accounts, then the log (which names them). */
async function loadAdmin() {
  const res = await api("GET", "/api/admin/accounts");
  const body = await json(res);
  if (!res.ok) return fail(body);
  state.accounts = body;
  renderAccounts();
  const actor = $("journal-actor");
  const chosen = actor.value;
  actor.replaceChildren(new Option(t("journalEveryone"), ""));
  for (const a of body) actor.append(new Option(accountName(a), a.id));
  actor.value = chosen;
  const action = $("journal-action");
  const picked = action.value;
  action.replaceChildren(new Option(t("journalAllActions"), ""));
  for (const [code, text] of Object.entries(ACTIONS[state.lang])) action.append(new Option(text, code));
  action.value = picked;
  await loadJournal(false);
}

function renderAccounts() {
  const q = $("accounts-q").value.trim().toLowerCase();
  const list = $("account-list");
  list.replaceChildren();
  const shown = (state.accounts ?? []).filter((a) =>
    !q || [a.username, a.email, a.name, a.surname].some((v) => (v ?? "").toLowerCase().includes(q)));
  for (const a of shown) {
    const item = document.createElement("li");
    item.dataset.id = a.id;
    const who = document.createElement("span");
    who.className = "who-line";
    const name = document.createElement("strong");
    name.textContent = accountName(a);
    const rest = document.createElement("span");
    const full = [a.name, a.surname].filter(Boolean).join(" ");
    rest.append(" · ", emailOf(a.email), full ? ` · ${full}` : "");
    who.append(name, rest);
    item.append(who);
    const self = a.id === state.me?.id;
    const role = document.createElement("select");
    role.className = "role";
    role.setAttribute("aria-label", `${t("accountRole")}: ${accountName(a)}`);
    for (const r of ROLES) role.append(new Option(t(`role${r[0].toUpperCase()}${r.slice(1)}`), r));
    role.value = roleKey(a.roles);
    const status = document.createElement("select");
    status.className = "status";
    status.setAttribute("aria-label", `${t("accountStatus")}: ${accountName(a)}`);
    if (a.status === "pending_activation") status.append(new Option(t("statusPending"), "pending_activation"));
    status.append(new Option(t("statusActive"), "active"), new Option(t("statusDisabled"), "disabled"));
    status.value = a.status;
    const apply = document.createElement("button");
    apply.type = "button";
    apply.className = "apply";
    apply.textContent = t("apply");
    apply.setAttribute("aria-label", `${t("apply")}: ${accountName(a)}`);
    apply.addEventListener("click", () => changeAccount(a, role.value, status.value));
    const reset = document.createElement("button");
    reset.type = "button";
    reset.className = "mfa-reset ghost";
    reset.textContent = t("mfaReset");
    reset.setAttribute("aria-label", `${t("mfaReset")}: ${accountName(a)}`);
    reset.addEventListener("click", () => resetAccountMfa(a));
    // Nobody changes their own account here (SPEC §2).
    for (const control of [role, status, apply, reset]) control.disabled = self;
    item.append(role, status, apply, reset);
    if (self) {
      const you = document.createElement("span");
      you.className = "hint";
      you.textContent = `(${t("you")})`;
      item.append(you);
    }
    list.append(item);
  }
  if (!shown.length) {
    const item = document.createElement("li");
    item.textContent = t("noAccounts");
    list.append(item);
  }
}

async function changeAccount(a, role, status) {
  const change = {};
  if (role !== roleKey(a.roles)) change.role = role;
  if (status !== a.status && status !== "pending_activation") change.status = status;
  if (!Object.keys(change).length) return;
  if (!(await confirmed(`${t("confirmChange")} ${accountName(a)}?`, t("change")))) return renderAccounts();
  const res = await api("PATCH", `/api/admin/accounts/${encodeURIComponent(a.id)}`, change);
  const body = await json(res);
  if (!res.ok) {
    fail(body);
    return renderAccounts();
  }
  say("ok", `${accountName(a)}: ${t("profileSaved")}`);
  await loadAdmin();
}

async function resetAccountMfa(a) {
  if (!(await confirmed(`${t("confirmMfaReset")} ${accountName(a)}?`, t("mfaReset")))) return;
  const res = await api("DELETE", `/api/admin/accounts/${encodeURIComponent(a.id)}/mfa`);
  const body = await json(res);
  if (!res.ok) return fail(body);
  say("ok", body.message);
  await loadJournal(false);
}

const JOURNAL_PAGE = 50;

/** The log, newest first, as sentences: when, who, what, about whom. `more`: the next page. */
async function loadJournal(more) {
  const params = new URLSearchParams({ limit: JOURNAL_PAGE });
  if ($("journal-action").value) params.set("action", $("journal-action").value);
  if ($("journal-actor").value) params.set("actor", $("journal-actor").value);
  if (more && state.journalBefore) params.set("before", state.journalBefore);
  const res = await api("GET", `/api/admin/audit?${params}`);
  const body = await json(res);
  if (!res.ok) return fail(body);
  const list = $("journal-list");
  if (!more) list.replaceChildren();
  const names = new Map((state.accounts ?? []).map((a) => [a.id, accountName(a)]));
  for (const e of body) {
    const item = document.createElement("li");
    const time = timeOf(e.at);
    const who = e.actor ? names.get(e.actor) ?? e.actor.slice(0, 8) : t("someone");
    const what = ACTIONS[state.lang][e.action] ?? e.action;
    // A target is named when it is another account; sessions and members stay unnamed here.
    const about = e.target && e.target !== e.actor && names.has(e.target) ? ` (${names.get(e.target)})` : "";
    item.append(time, document.createTextNode(`${who}: ${what}${about}${e.ip ? ` · ${e.ip}` : ""}`));
    list.append(item);
  }
  if (!more && !body.length) {
    const item = document.createElement("li");
    item.textContent = t("journalEmpty");
    list.append(item);
  }
  state.journalBefore = body.length ? body[body.length - 1].atMs : null;
  $("journal-more").hidden = body.length < JOURNAL_PAGE;
}

// ---- the account's second factors ------------------------------------------------------------

async function loadSecurity() {
  const res = await api("GET", "/api/auth/mfa");
  if (!res.ok) return;
  state.factors = await json(res);
  renderSecurity();
}

const when = (iso) => new Date(iso).toLocaleString(state.lang);

/** A date and time that never break across lines (CSS keeps <time> whole). */
function timeOf(iso) {
  const el = document.createElement("time");
  el.dateTime = iso;
  el.textContent = when(iso);
  return el;
}

/** An address that breaks only where it is wider than a whole line, never mid-word otherwise. */
function emailOf(text) {
  const el = document.createElement("span");
  el.className = "email";
  el.textContent = text;
  return el;
}

function renderSecurity() {
  const f = state.factors;
  if (!f) return;
  $("mfa-summary").textContent = `${t(f.totp ? "totpOn" : "totpOff")} · ${t("recoveryLeft")} ${f.recoveryCodesLeft}`;
  $("totp-start").hidden = f.totp || !$("totp-enrol").hidden;
  $("mfa-manage").hidden = !(f.totp || f.passkeys.length || f.recoveryCodesLeft);
  $("totp-disable").hidden = !f.totp;
  // An account with passkeys alone makes new recovery codes from a passkey sign-in, no code.
  $("manage-code").required = f.totp;
  $("passkey-add-form").hidden = !passkeysAvailable();
  const list = $("passkey-list");
  list.replaceChildren();
  for (const p of f.passkeys) {
    const item = document.createElement("li");
    const text = document.createElement("span");
    const name = document.createElement("strong");
    name.textContent = p.name;
    const dates = document.createElement("span");
    dates.className = "when";
    dates.append(` · ${t("added")} `, timeOf(p.createdAt), " · ");
    if (p.lastUsedAt) dates.append(`${t("lastUsed")} `, timeOf(p.lastUsedAt));
    else dates.append(t("neverUsed"));
    text.append(name, dates);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "ghost";
    remove.textContent = t("delete");
    remove.setAttribute("aria-label", `${t("delete")}: ${p.name}`);
    remove.addEventListener("click", () => removePasskey(p));
    item.append(text, remove);
    list.append(item);
  }
  if (!f.passkeys.length) {
    const item = document.createElement("li");
    item.textContent = t("noPasskeys");
    list.append(item);
  }
}

async function onTotpStart() {
  const res = await api("POST", "/api/auth/mfa/totp");
  const body = await json(res);
  if (!res.ok) return fail(body);
  // The SVG comes from brama; as an <img> it cannot run anything.
  $("totp-qr").src = `data:image/svg+xml;base64,${btoa(body.qrSvg)}`;
  $("totp-qr").alt = t("totpQr");
  $("totp-secret").textContent = body.secret.match(/.{1,4}/g).join(" ");
  $("totp-enrol").hidden = false;
  $("totp-start").hidden = true;
  $("totp-code").value = "";
  $("totp-code").focus();
}

function closeTotpEnrol() {
  $("totp-enrol").hidden = true;
  $("totp-qr").src = "data:,";
  $("totp-secret").textContent = "";
  renderSecurity();
}

async function onTotpConfirm(event) {
  event.preventDefault();
  const res = await api("POST", "/api/auth/mfa/totp/confirm", { code: $("totp-code").value.trim() });
  const body = await json(res);
  if (!res.ok) return fail(body);
  closeTotpEnrol();
  say("ok", t("totpEnabled"));
  showRecovery(body.recoveryCodes);
  await loadSecurity();
}

async function onRecoveryNew(event) {
  event.preventDefault();
  const res = await api("POST", "/api/auth/mfa/recovery-codes", { code: $("manage-code").value.trim() });
  const body = await json(res);
  if (!res.ok) return fail(body);
  $("manage-code").value = "";
  showRecovery(body.recoveryCodes);
  await loadSecurity();
}

async function onTotpDisable() {
  if (!$("manage-code").reportValidity()) return;
  const res = await api("DELETE", "/api/auth/mfa/totp", { code: $("manage-code").value.trim() });
  const body = await json(res);
  if (!res.ok) return fail(body);
  $("manage-code").value = "";
  say("ok", body.message);
  await loadSecurity();
}

/** Recovery codes, shown this once: on the page and as a .txt download. */
function showRecovery(codes) {
  state.recovery = codes;
  $("recovery-list").replaceChildren(...codes.map((code) => {
    const item = document.createElement("li");
    item.textContent = code;
    return item;
  }));
  $("recovery-box").hidden = false;
  $("recovery-title").tabIndex = -1;
  $("recovery-title").focus();
}

function hideRecovery() {
  state.recovery = null;
  $("recovery-list").replaceChildren();
  $("recovery-box").hidden = true;
}

function downloadRecovery() {
  const who = state.me?.username ?? state.me?.email ?? "";
  const text = `${t("recoveryFileTitle")} ${who}\n${t("recoveryFileHint")}\n\n${state.recovery.join("\n")}\n`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  link.download = state.lang === "pl" ? "brama-kody-odzyskiwania.txt" : "brama-recovery-codes.txt";
  link.click();
  URL.revokeObjectURL(link.href);
}

async function onPasskeyAdd(event) {
  event.preventDefault();
  const start = await api("POST", "/api/auth/passkeys/register/start");
  const options = await json(start);
  if (!start.ok) return fail(options);
  const credential = await withPasskey(() => createPasskey(options));
  if (!credential) return;
  const res = await api("POST", "/api/auth/passkeys/register/finish", { name: $("passkey-name").value.trim(), credential });
  const body = await json(res);
  if (!res.ok) return fail(body);
  $("passkey-name").value = "";
  say("ok", t("passkeyAdded"));
  if (body.recoveryCodes) showRecovery(body.recoveryCodes);
  await loadSecurity();
}

async function removePasskey(p) {
  if (!(await confirmed(`${t("confirmRemovePasskey")} ${p.name}?`))) return;
  const res = await api("DELETE", `/api/auth/passkeys/${encodeURIComponent(p.id)}`);
  const body = await json(res);
  if (!res.ok) return fail(body);
  say("ok", body.message);
  await loadSecurity();
}

async function onRegister(event) {
  event.preventDefault();
  const form = $("register-form");
  clearErrors(form);
  await fetchCsrf();
  const res = await api("POST", "/api/auth/register", {
    username: $("register-username").value, email: $("register-email").value, password: $("register-password").value,
  });
  const body = await json(res);
  if (!res.ok) return formFailed(body, "register-");
  $("register-password").value = "";
  await loggedIn(body);
  say("ok", body.message);
}

async function onMe() {
  const me = await loadMe();
  if (me) show(me);
}

async function onRefresh() {
  if (!sessionStorage.getItem(REFRESH_KEY)) return say("bad", t("noRefreshToken"));
  const ok = await refreshSession();
  show({ refreshed: ok });
  if (ok) say("ok", t("refreshed"));
  else {
    state.me = null;
    renderSession();
    say("bad", t("sessionEnded"));
  }
}

async function onCsrf() {
  const body = await fetchCsrf();
  show({ sessionId: `${body.sessionId.slice(0, 8)}…` });
  say("ok", t("csrfReady"));
}

async function onLogout(all) {
  const res = await api("POST", all ? "/api/auth/logout-all" : "/api/auth/logout");
  const body = await json(res);
  sessionStorage.removeItem(REFRESH_KEY);
  // Logging out clears the CSRF cookie too; the next form asks for a new pair.
  state.csrf = null;
  state.me = null;
  renderSession();
  show(body);
  if (res.ok) say("ok", body.message);
  else fail(body);
}

async function onForgot(event) {
  event.preventDefault();
  const res = await api("POST", "/api/auth/password/forgot", { email: $("forgot-email").value });
  const body = await json(res);
  if (!res.ok) return fail(body);
  say("ok", body.message);
}

// ---- activation and reset (links from emails) -------------------------------------------------

function tokenFromFragment() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  // The token leaves the address bar and the history at once.
  history.replaceState(null, "", location.pathname);
  return token;
}

async function onActivate(event, token) {
  event.preventDefault();
  const res = await fetch("/company/activate", {
    method: "POST", headers: headers(true),
    body: JSON.stringify({ token, password: $("activate-password").value, name: $("activate-name").value, surname: $("activate-surname").value }),
  });
  const body = await json(res);
  if (!res.ok) {
    // A refusal that names no field is the link itself (used, expired): offer a new one.
    if (res.status === 400 && !(body.msg ?? []).length) $("resend-form").hidden = false;
    return fail(body);
  }
  // The activation answers with a token pair; one refresh in browser mode turns it into the cookie.
  sessionStorage.setItem(REFRESH_KEY, body.data.refresh);
  await fetchCsrf();
  await refreshSession();
  history.replaceState(null, "", "/");
  state.view = "home";
  $("activate-view").hidden = true;
  await loadMe();
  say("ok", t("activated"));
}

/** A new activation link for a company account whose link no longer works. */
async function onResend(event) {
  event.preventDefault();
  const res = await fetch("/company/activation/resend", {
    method: "POST", headers: headers(true), body: JSON.stringify({ email: $("resend-email").value.trim() }),
  });
  const body = await json(res);
  if (!res.ok) return fail(body);
  say("ok", body.info ?? body.message ?? "");
}

async function onReset(event, token) {
  event.preventDefault();
  clearErrors($("reset-form"));
  const res = await api("POST", "/api/auth/password/reset", { token, password: $("reset-password").value });
  const body = await json(res);
  if (!res.ok) return fail(body, "reset-");
  history.replaceState(null, "", "/");
  state.view = "home";
  $("reset-view").hidden = true;
  $("auth").hidden = false;
  say("ok", body.message);
}

// ---- members --------------------------------------------------------------------------------

async function loadMembers() {
  const { page, sort, order, q, woj } = state.list;
  const params = new URLSearchParams({ page, limit: PAGE_SIZE, sort, order });
  if (q) params.set("q", q);
  if (woj) params.set("wojewodztwo", woj);
  const res = await api("GET", `/api/membership/members?${params}`);
  const body = await json(res);
  if (!res.ok) return fail(body);
  state.list.total = Number(res.headers.get("x-total-count") ?? body.length);
  renderMembers(body);
}

function renderMembers(members) {
  const tbody = $("members-table").querySelector("tbody");
  tbody.replaceChildren();
  for (const m of members) {
    const tr = document.createElement("tr");
    tr.dataset.id = m._id;
    const cells = [
      ["surname", m.nazwisko], ["name", m.imie], [null, m.pesel],
      ["city", m.miejscowosc], ["voivodeship", m.wojewodztwo], [null, m.email],
    ];
    for (const [label, value] of cells) {
      const td = document.createElement("td");
      td.dataset.label = label ? t(label) : value === m.pesel ? "PESEL" : "E-mail";
      if (value === m.pesel) td.append(peselCell(m));
      else if (value === m.email) td.append(emailOf(value));
      else td.textContent = value;
      tr.append(td);
    }
    const td = document.createElement("td");
    const row = document.createElement("div");
    row.className = "row";
    const edit = document.createElement("button");
    edit.type = "button";
    edit.className = "edit";
    edit.textContent = t("edit");
    edit.setAttribute("aria-label", `${t("edit")}: ${m.imie} ${m.nazwisko}`);
    edit.addEventListener("click", () => openMember(m));
    row.append(edit);
    if (rank(state.me?.roles) >= 2) {
      const del = document.createElement("button");
      del.type = "button";
      del.className = "delete danger";
      del.textContent = t("delete");
      del.setAttribute("aria-label", `${t("delete")}: ${m.imie} ${m.nazwisko}`);
      del.addEventListener("click", () => deleteMember(m));
      row.append(del);
    }
    td.append(row);
    tr.append(td);
    tbody.append(tr);
  }
  if (!members.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 7;
    td.textContent = t("noMembers");
    tr.append(td);
    tbody.append(tr);
  }
  const pages = Math.max(1, Math.ceil(state.list.total / PAGE_SIZE));
  const count = state.list.total;
  $("page-info").textContent = `${t("page")} ${state.list.page} / ${pages} · ${count} ${count === 1 ? t("memberOne") : t("membersCount")}`;
  $("prev").disabled = state.list.page <= 1;
  $("next").disabled = state.list.page >= pages;
  for (const b of document.querySelectorAll("th button.sort")) {
    const th = b.closest("th");
    if (b.dataset.sort === state.list.sort) {
      b.dataset.dir = state.list.order;
      th.setAttribute("aria-sort", state.list.order === "asc" ? "ascending" : "descending");
    } else {
      delete b.dataset.dir;
      th.removeAttribute("aria-sort");
    }
  }
}

/**
 * A PESEL as the list gives it: masked (SPEC §12) unless the organization lists them whole. "Show"
 * reads that one member from the server, which records the reading in the audit trail; "Hide"
 * masks it again. The whole value is kept only in this cell, never in the list's state.
 */
function peselCell(m) {
  const wrap = document.createElement("span");
  wrap.className = "pesel";
  const value = document.createElement("span");
  value.className = "pesel-value";
  value.textContent = m.pesel;
  wrap.append(value);
  if (!m.pesel.startsWith("*")) return wrap;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "reveal ghost";
  const label = (key) => {
    button.textContent = t(key === "reveal" ? "reveal" : "conceal");
    button.setAttribute("aria-label", `${t(key === "reveal" ? "revealPesel" : "concealPesel")}: ${m.imie} ${m.nazwisko}`);
  };
  label("reveal");
  button.addEventListener("click", async () => {
    if (button.dataset.shown) {
      value.textContent = m.pesel;
      delete button.dataset.shown;
      return label("reveal");
    }
    const res = await api("GET", `/api/membership/members/${m._id}`);
    const body = await json(res);
    if (!res.ok) return fail(body);
    value.textContent = body.pesel;
    button.dataset.shown = "true";
    label("conceal");
  });
  wrap.append(button);
  return wrap;
}

const FIELDS = ["imie", "nazwisko", "pesel", "wyksztalcenie", "wojewodztwo", "miejscowosc", "ulica", "nrdomulokalu", "kodpocztowy", "email", "tel"];

/**
 * Opens the member form. Lists show PESELs masked (SPEC §12): editing one member reads it whole,
 * on purpose, which the server records in the audit trail.
 */
async function openMember(listed) {
  let member = listed ?? null;
  if (member) {
    const res = await api("GET", `/api/membership/members/${member._id}`);
    const body = await json(res);
    if (!res.ok) return fail(body);
    member = body;
  }
  state.editing = member;
  const form = $("member-form");
  clearErrors(form);
  for (const f of FIELDS) $(`m-${f}`).value = member ? member[f] : "";
  $("member-dialog-title").textContent = member ? `${member.imie} ${member.nazwisko}` : t("addMember");
  $("member-dialog").showModal();
  $("m-imie").focus();
}

function formValues() {
  return Object.fromEntries(FIELDS.map((f) => [f, $(`m-${f}`).value.trim()]));
}

/** Validation as one types: each field's problem appears under it. */
function checkField(field) {
  const problems = checkMember(formValues(), state.lang);
  const span = $(`err-${field}`);
  const problem = problems[field];
  span.textContent = problem ?? "";
  if (problem) $(`m-${field}`).setAttribute("aria-invalid", "true");
  else $(`m-${field}`).removeAttribute("aria-invalid");
  return !problem;
}

async function saveMember(event) {
  event.preventDefault();
  const form = $("member-form");
  clearErrors(form);
  const ok = FIELDS.map(checkField).every(Boolean);
  if (!ok) return;
  const values = formValues();
  const editing = state.editing;
  const res = editing
    ? await api("PATCH", `/api/membership/members/${editing._id}`, { ...values, __v: editing.__v })
    : await api("POST", "/api/membership/members", values);
  const body = await json(res);
  if (!res.ok) return fail(body);
  $("member-dialog").close();
  say("ok", editing ? t("memberSaved") : t("memberAdded"));
  await loadMembers();
}

/** Asks with the confirmation dialog; true when the person chose to go ahead. */
async function confirmed(question, yes = t("delete")) {
  $("confirm-text").textContent = question;
  $("confirm-yes").textContent = yes;
  const dialog = $("confirm-dialog");
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-no").focus();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  return dialog.returnValue === "yes";
}

async function deleteMember(m) {
  if (!(await confirmed(`${t("confirmDelete")} ${m.imie} ${m.nazwisko}?`))) return;
  const res = await api("DELETE", `/api/membership/members/${m._id}`);
  const body = await json(res);
  if (!res.ok) return fail(body);
  say("ok", body.message);
  await loadMembers();
}

/** Downloads the whole register: `csv` or `xlsx` (Excel, where PESELs stay text). */
async function exportMembers(format) {
  const res = await api("GET", `/api/membership/members/export.${format}`);
  if (!res.ok) return fail(await json(res));
  const blob = await res.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `czlonkowie.${format}`;
  link.click();
  URL.revokeObjectURL(link.href);
}

// ---- wiring ---------------------------------------------------------------------------------

/** A "show the password" toggle after every password field: typing on a phone is error-prone. */
function addPasswordToggles() {
  for (const input of document.querySelectorAll("input[type=password]")) {
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "ghost show-password";
    toggle.setAttribute("aria-controls", input.id);
    toggle.setAttribute("aria-pressed", "false");
    const label = () => {
      const shown = input.type === "text";
      toggle.textContent = t(shown ? "hidePassword" : "showPassword");
      toggle.setAttribute("aria-pressed", String(shown));
    };
    toggle.addEventListener("click", () => {
      input.type = input.type === "password" ? "text" : "password";
      label();
    });
    toggle.dataset.relabel = "true";
    toggle.relabel = label;
    label();
    input.after(toggle);
  }
}

function clearMessage() {
  $("message").hidden = true;
  $("message").replaceChildren();
}

const TABS = ["login", "register", "company", "forgot"];

/** WAI-ARIA tabs: the selected tab is the one Tab stop; arrows, Home and End move between. */
function selectTab(name, focus = false) {
  clearMessage();
  for (const tab of TABS) {
    const button = $(`tab-${tab}`);
    button.setAttribute("aria-selected", String(tab === name));
    button.tabIndex = tab === name ? 0 : -1;
    $(`${tab}-form`).hidden = tab !== name;
  }
  if (focus) $(`tab-${name}`).focus();
}

function onTabKey(event) {
  const current = TABS.findIndex((tab) => $(`tab-${tab}`).getAttribute("aria-selected") === "true");
  const next = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: TABS.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  selectTab(TABS[(next + TABS.length) % TABS.length], true);
}

// ---- another application's sign-in (OpenID Connect, SPEC §14) --------------------------------

/** The parked authorization request the address names (`#request=…`), and what it is for. */
async function oidcRequest() {
  const id = new URLSearchParams(location.hash.slice(1)).get("request");
  if (!id) return null;
  const res = await fetch(`/oauth2/requests/${encodeURIComponent(id)}`, { credentials: "same-origin" });
  if (!res.ok) return { id, expired: true };
  return { id, ...(await res.json()) };
}

async function startSignIn() {
  const request = await oidcRequest();
  if (!request || request.expired) return say("bad", t("oidcExpired"));
  state.oidcRequest = request.id;
  $("oidc-notice").hidden = false;
  $("oidc-notice").replaceChildren(`${t("oidcSignIn")} `, Object.assign(document.createElement("strong"), { textContent: request.client_name }));
}

async function startConsent() {
  const request = await oidcRequest();
  if (!request || request.expired) return say("bad", t("oidcExpired"));
  // No session to consent with (it ended, or it is another organization's): sign in first.
  if (!request.scopes) return location.replace(`/sign-in#request=${encodeURIComponent(request.id)}`);
  $("auth").hidden = true;
  $("consent-view").hidden = false;
  $("consent-client").textContent = request.client_name;
  $("consent-account").textContent = request.account;
  state.consentAccount = request.account;
  renderWho();
  const list = $("consent-scopes");
  list.replaceChildren();
  for (const scope of request.scopes) {
    const item = document.createElement("li");
    item.textContent = t(`scope_${scope}`);
    list.append(item);
  }
  focusView();
  const decide = async (allow) => {
    const res = await api("POST", "/oauth2/consent", { request: request.id, allow });
    const body = await json(res);
    if (!res.ok) return say("bad", body.error_description ?? t("oidcExpired"));
    location.assign(body.redirect_to);
  };
  $("consent-allow").addEventListener("click", () => decide(true));
  $("consent-deny").addEventListener("click", () => decide(false));
}

/** The document's title names the view, and focus goes to its heading (for screen readers). */
function announceView() {
  const heading = !$("not-found-view").hidden ? "not-found-title"
    : !$("consent-view").hidden ? "consent-title"
    : !$("activate-view").hidden ? "activate-title"
    : !$("reset-view").hidden ? "reset-title"
    : !$("confirm-email-view").hidden ? "confirm-email-title"
    : !$("mfa-step").hidden ? "mfa-step-title"
    : state.me ? "account-title" : "auth-title";
  document.title = `${$(heading).textContent} · brama`;
  return heading;
}

function focusView() {
  const heading = $(announceView());
  heading.tabIndex = -1;
  heading.focus();
}

function fillSelects() {
  for (const select of [$("member-woj"), $("m-wojewodztwo")]) {
    for (const v of VOIVODESHIPS) select.append(new Option(v, v));
  }
  $("m-wyksztalcenie").append(new Option("—", ""));
  for (const [value] of EDUCATION) $("m-wyksztalcenie").append(new Option(value, value));
}

/** Education levels read in the page's language; the value sent stays the stored Polish name. */
function translateEducation() {
  const names = new Map(EDUCATION);
  for (const option of $("m-wyksztalcenie").options) {
    if (option.value) option.textContent = state.lang === "en" ? names.get(option.value) : option.value;
  }
}

let searchTimer;

function wire() {
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "pl" ? "en" : "pl";
    localStorage.setItem("lang", state.lang);
    // A banner or a field's error in the old language would stay behind: they go.
    clearMessage();
    clearErrors(document);
    applyLanguage();
    if (state.me) renderSession();
  });
  for (const tab of TABS) $(`tab-${tab}`).addEventListener("click", () => selectTab(tab));
  document.querySelector(".tabs").addEventListener("keydown", onTabKey);
  $("login-form").addEventListener("submit", (e) => onLogin(e, "login-username", "login-password"));
  $("company-form").addEventListener("submit", (e) => onLogin(e, "company-email", "company-password"));
  $("register-form").addEventListener("submit", onRegister);
  $("passkey-login").hidden = !passkeysAvailable();
  $("passkey-login").addEventListener("click", onPasskeyLogin);
  $("mfa-step-form").addEventListener("submit", onSecondStep);
  $("mfa-passkey").addEventListener("click", onSecondStepPasskey);
  $("mfa-cancel").addEventListener("click", endSecondStep);
  $("totp-start").addEventListener("click", onTotpStart);
  $("totp-enrol").addEventListener("submit", onTotpConfirm);
  $("totp-cancel").addEventListener("click", closeTotpEnrol);
  $("mfa-manage").addEventListener("submit", onRecoveryNew);
  $("totp-disable").addEventListener("click", onTotpDisable);
  $("recovery-download").addEventListener("click", downloadRecovery);
  $("recovery-done").addEventListener("click", hideRecovery);
  $("passkey-add-form").addEventListener("submit", onPasskeyAdd);
  $("profile-form").addEventListener("submit", onProfileSave);
  $("password-form").addEventListener("submit", onPasswordSave);
  $("email-form").addEventListener("submit", onEmailSave);
  $("sessions-panel").addEventListener("toggle", () => { if ($("sessions-panel").open) loadSessions(); });
  $("export-me").addEventListener("click", exportMe);
  $("delete-me-form").addEventListener("submit", onDeleteMe);
  $("resend-form").addEventListener("submit", onResend);
  $("accounts-q").addEventListener("input", renderAccounts);
  $("journal-action").addEventListener("change", () => loadJournal(false));
  $("journal-actor").addEventListener("change", () => loadJournal(false));
  $("journal-more").addEventListener("click", () => loadJournal(true));
  $("forgot-form").addEventListener("submit", onForgot);
  $("me").addEventListener("click", onMe);
  $("refresh").addEventListener("click", onRefresh);
  $("csrf").addEventListener("click", onCsrf);
  $("logout").addEventListener("click", () => onLogout(false));
  $("logout-all").addEventListener("click", () => onLogout(true));
  $("member-add").addEventListener("click", () => openMember(null));
  $("member-cancel").addEventListener("click", () => $("member-dialog").close());
  $("member-form").addEventListener("submit", saveMember);
  $("member-export").addEventListener("click", () => exportMembers("csv"));
  $("member-export-xlsx").addEventListener("click", () => exportMembers("xlsx"));
  for (const f of FIELDS) $(`m-${f}`).addEventListener("input", () => checkField(f));
  $("m-pesel").addEventListener("blur", () => checkField("pesel"));
  $("member-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.list.q = $("member-q").value.trim(); state.list.page = 1; loadMembers(); }, 250);
  });
  $("member-woj").addEventListener("change", () => { state.list.woj = $("member-woj").value; state.list.page = 1; loadMembers(); });
  for (const b of document.querySelectorAll("th button.sort")) {
    b.addEventListener("click", () => {
      const same = state.list.sort === b.dataset.sort;
      state.list.order = same && state.list.order === "asc" ? "desc" : "asc";
      state.list.sort = b.dataset.sort;
      loadMembers();
    });
  }
  $("prev").addEventListener("click", () => { state.list.page -= 1; loadMembers(); });
  $("next").addEventListener("click", () => { state.list.page += 1; loadMembers(); });
}

/** /confirm-email#token=…: the link sent to a new address confirms it at once. */
async function confirmEmail(token) {
  $("auth").hidden = true;
  $("actions").hidden = true;
  $("confirm-email-view").hidden = false;
  focusView();
  if (!token) return say("bad", t("linkWithoutToken"));
  const res = await api("POST", "/api/auth/email/confirm", { token });
  const body = await json(res);
  $("confirm-email-text").textContent = body.message ?? t("somethingWrong");
  if (res.ok) {
    say("ok", body.message);
    // A session opened in this browser stays; reload the account with its new address.
    if (sessionStorage.getItem(REFRESH_KEY)) await loadMe(true);
    $("auth").hidden = true;
  } else fail(body);
}

async function start() {
  fillSelects();
  addPasswordToggles();
  wire();
  applyLanguage();
  const path = location.pathname;
  state.view = {
    "/": "home", "/activate": "activate", "/reset": "reset", "/confirm-email": "confirm-email",
    "/sign-in": "sign-in", "/consent": "consent",
  }[path] ?? "not-found";
  renderSession();
  if (state.view === "not-found") {
    $("auth").hidden = true;
    $("not-found-view").hidden = false;
    return focusView();
  }
  if (path === "/confirm-email") return confirmEmail(tokenFromFragment());
  if (path === "/consent") return startConsent();
  if (path === "/sign-in") return startSignIn();
  if (path === "/activate" || path === "/reset") {
    const token = tokenFromFragment();
    $("auth").hidden = true;
    const view = path === "/activate" ? "activate" : "reset";
    $(`${view}-view`).hidden = false;
    focusView();
    $(`${view}-form`).addEventListener("submit", (e) => (view === "activate" ? onActivate(e, token) : onReset(e, token)));
    if (!token) say("bad", t(view === "reset" ? "resetWithoutToken" : "linkWithoutToken"));
    return;
  }
  // A reload keeps the session: the cookie may still hold a token, or the refresh token can get one.
  if (sessionStorage.getItem(REFRESH_KEY)) await loadMe(true);
}

start().finally(() => { document.body.dataset.ready = "true"; });
