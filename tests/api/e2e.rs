//! Seed 000's page in headless Chromium against the real binary (issue 5): the five actions,
//! the register -> log in -> my data -> refresh -> log out flow, the member register, company
//! activation from the emailed link, and an expired access token refreshed unnoticed. The tests
//! save the screenshots the README shows.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::browser::Browser;
use crate::helpers::{Backend, TestDb};
use crate::process::{Server, brama, data_env, run, serve, text};

const PASSWORD: &str = "Zx8!quokka";

/// Where a screenshot goes: the README's copies under `docs/screenshots` when
/// `BRAMA_UPDATE_SCREENSHOTS=1`, otherwise `target/e2e-screenshots`, so a test run leaves the
/// work tree clean.
fn shot(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = if std::env::var("BRAMA_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        root.join("docs/screenshots")
    } else {
        root.join("target/e2e-screenshots")
    };
    dir.join(format!("{name}.png"))
}

/// The real binary on a fresh SQLite data dir, and a browser; `None` when the browser is skipped.
async fn setup(name: &str) -> Option<(TestDb, Server, Browser)> {
    let browser = Browser::start().await?;
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let server = serve(&db, Backend::Sqlite, &[], name).await;
    Some((db, server, browser))
}

/// The first line with `needle` in an email of the outbox, as `brama outbox --json` shows it to
/// an operator without SMTP (waiting for the email, which is queued after the answer).
async fn outbox_link(db: &TestDb, needle: &str) -> String {
    for _ in 0..50 {
        let mut cmd = brama(db.dir());
        data_env(&mut cmd, db, Backend::Sqlite);
        let output = run(
            {
                cmd.args(["outbox", "--json"]);
                cmd
            },
            "",
        )
        .await;
        let emails: Value = serde_json::from_str(&text(&output.stdout)).unwrap_or(Value::Null);
        let found = emails.as_array().into_iter().flatten().find_map(|e| {
            e["body"]
                .as_str()?
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        });
        if let Some(link) = found {
            return link.trim().to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no email with {needle} in the outbox");
}

async fn register_in_page(b: &Browser, server: &Server, username: &str) {
    b.goto(&server.url("/")).await;
    b.wait("body[data-ready='true']").await;
    b.click("#tab-register").await;
    b.fill("#register-username", username).await;
    b.fill("#register-email", &format!("{username}@example.com"))
        .await;
    b.fill("#register-password", PASSWORD).await;
    b.click("#register").await;
    b.wait_text("#who", username).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_actions_and_the_whole_flow() {
    let Some((_db, server, b)) = setup("e2e-flow").await else {
        return;
    };
    b.goto(&server.url("/")).await;
    b.wait("body[data-ready='true']").await;
    assert_eq!(b.text("#login").await, "Zaloguj", "Polish by default");
    b.screenshot(&shot("login")).await;

    // Csrf: a pair from /api/auth/csrf; the cookie is HttpOnly, so only WebDriver sees it.
    b.click("#csrf").await;
    b.wait_text("#output", "sessionId").await;
    assert!(b.cookies().await.iter().any(|(n, _)| n == "sessionToken"));

    // Zarejestruj: the page logs the new account straight in.
    register_in_page(&b, &server, "ewa").await;
    assert!(
        b.text("#who").await.contains("właściciel"),
        "the first account is the owner"
    );
    let cookies = b.cookies().await;
    assert!(
        cookies.iter().any(|(n, _)| n == "token"),
        "access token in the cookie"
    );
    let stored = b
        .eval("return sessionStorage.getItem('refreshToken')")
        .await;
    assert_eq!(
        stored.as_str().map(str::len),
        Some(43),
        "refresh token in sessionStorage"
    );
    let readable = b.eval("return document.cookie").await;
    assert!(
        !readable.as_str().unwrap_or_default().contains("token="),
        "scripts cannot read the access token"
    );

    // Wyloguj, then Zaloguj.
    b.click("#logout").await;
    b.wait("#auth:not([hidden])").await;
    b.wait_text("#who", "Nie zalogowano").await;
    b.click("#tab-login").await;
    b.fill("#login-username", "ewa").await;
    b.fill("#login-password", "Wrong#pass1").await;
    b.click("#login").await;
    b.wait_text("#message", "Nieprawidłowa nazwa użytkownika lub hasło")
        .await;
    b.fill("#login-password", PASSWORD).await;
    b.click("#login").await;
    b.wait_text("#who", "ewa").await;

    // Pobierz moje dane.
    b.click("#me").await;
    b.wait_text("#output", "\"username\": \"ewa\"").await;
    b.screenshot(&shot("my-data")).await;

    // Refresh: a new refresh token, and the session goes on.
    let before = b
        .eval("return sessionStorage.getItem('refreshToken')")
        .await;
    b.click("#refresh").await;
    b.wait_text("#output", "\"refreshed\": true").await;
    let after = b
        .eval("return sessionStorage.getItem('refreshToken')")
        .await;
    assert_ne!(before, after);

    // English on a click, for the page and for the API's messages.
    b.click("#lang").await;
    b.wait_text("#logout", "Log out").await;
    b.click("#logout").await;
    b.wait_text("#message", "You've been signed out!").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_add_edit_delete_with_field_errors() {
    let Some((_db, server, b)) = setup("e2e-members").await else {
        return;
    };
    register_in_page(&b, &server, "owner1").await;
    b.wait("#members:not([hidden])").await;

    let pesel = brama::domain::Pesel::from_parts(1985, 4, 12, 4321)
        .unwrap()
        .as_str()
        .to_string();
    let fill_member = |imie: &'static str, pesel: String| {
        let b = &b;
        async move {
            b.click("#member-add").await;
            b.wait("#member-dialog[open]").await;
            for (field, value) in [
                ("imie", imie),
                ("nazwisko", "Kowalska"),
                ("miejscowosc", "Kraków"),
                ("ulica", "Floriańska"),
                ("nrdomulokalu", "12/3"),
                ("kodpocztowy", "31-019"),
                ("email", "anna@example.com"),
                ("tel", "600 100 200"),
            ] {
                b.fill(&format!("#m-{field}"), value).await;
            }
            b.select("#m-wojewodztwo", "Małopolskie").await;
            b.select("#m-wyksztalcenie", "Wyższe").await;
            b.fill("#m-pesel", &pesel).await;
        }
    };

    // A PESEL with a wrong check digit is caught while typing.
    let mut wrong = pesel.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '9' {
        '0'
    } else {
        char::from(last as u8 + 1)
    });
    fill_member("Anna", wrong).await;
    b.wait_text("#err-pesel", "cyfra kontrolna").await;
    b.screenshot(&shot("member-form-error")).await;
    b.fill("#m-pesel", &pesel).await;
    b.wait_text_is("#err-pesel", "").await;
    b.click("#member-save").await;
    b.wait_text("#members-table tbody", "Kowalska").await;

    // The same PESEL again: only the server knows it is taken, and the page shows its words.
    fill_member("Maria", pesel.clone()).await;
    b.click("#member-save").await;
    b.wait_text_is("#err-pesel", "jest już w użyciu").await;
    b.click("#member-cancel").await;

    // Edit.
    b.click("#members-table tbody tr .edit").await;
    b.wait("#member-dialog[open]").await;
    b.fill("#m-miejscowosc", "Wieliczka").await;
    b.click("#member-save").await;
    b.wait_text("#members-table tbody", "Wieliczka").await;
    b.screenshot(&shot("members")).await;

    // Delete, after saying no once.
    b.click("#members-table tbody tr .delete").await;
    b.wait("#confirm-dialog[open]").await;
    b.click("#confirm-no").await;
    b.wait_text("#members-table tbody", "Wieliczka").await;
    b.click("#members-table tbody tr .delete").await;
    b.wait("#confirm-dialog[open]").await;
    b.click("#confirm-yes").await;
    b.wait_text("#message", "Członek został usunięty!").await;
    b.wait_text("#members-table tbody", "Brak członków").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_activation_from_the_link_in_the_outbox() {
    let Some((db, server, b)) = setup("e2e-activation").await else {
        return;
    };
    let (status, _) = server
        .post(
            "/company/signup",
            json!({ "email": "szef@firma.pl", "phone": "+48600100200", "state": 1 }),
        )
        .await;
    assert_eq!(status, 200);
    let link = outbox_link(&db, "/activate#token=").await;
    b.goto(&link).await;
    b.wait("#activate-view:not([hidden])").await;
    let url = b.eval("return location.href").await;
    assert!(
        !url.as_str().unwrap_or_default().contains("token"),
        "the token left the address bar: {url}"
    );
    b.fill("#activate-name", "Jan").await;
    b.fill("#activate-surname", "Szef").await;
    b.fill("#activate-password", PASSWORD).await;
    b.screenshot(&shot("activation")).await;
    b.click("#activate").await;
    b.wait_text("#who", "szef@firma.pl").await;
    assert!(b.text("#who").await.contains("właściciel"));
    assert!(
        b.cookies().await.iter().any(|(n, _)| n == "token"),
        "logged in by cookie"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_token_is_refreshed_unnoticed() {
    let Some((_db, server, b)) = setup("e2e-expiry").await else {
        return;
    };
    register_in_page(&b, &server, "ola").await;
    let before = b
        .eval("return sessionStorage.getItem('refreshToken')")
        .await;
    // The browser drops the cookie when the access token expires (its Max-Age is the token's
    // lifetime); removing it is exactly that moment, without waiting five minutes.
    b.delete_cookie("token").await;
    b.click("#me").await;
    b.wait_text("#output", "\"username\": \"ola\"").await;
    let message = b
        .eval("return document.getElementById('message').textContent")
        .await;
    assert!(
        !message.as_str().unwrap_or_default().contains("token"),
        "no error was shown: {message}"
    );
    let after = b
        .eval("return sessionStorage.getItem('refreshToken')")
        .await;
    assert_ne!(
        before, after,
        "the refresh token was used once and replaced"
    );
    assert!(
        b.cookies().await.iter().any(|(n, _)| n == "token"),
        "a new access cookie"
    );
    b.close().await;
}

/// SPEC §12 in the page: the register lists PESELs masked; "Pokaż" reads one member on purpose
/// (the server records `member.pesel_read`) and "Ukryj" masks it again; the export offers CSV
/// and Excel; on a desktop and on a 390 px phone nothing scrolls sideways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_shows_pesels_masked_and_reveals_one_on_purpose() {
    let Some((_db, server, b)) = setup("e2e-reveal").await else {
        return;
    };
    register_in_page(&b, &server, "owner1").await;
    let (status, login) = server
        .post(
            "/api/auth/login",
            json!({ "username": "owner1", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["accessToken"].as_str().unwrap().to_string();
    let pesels: Vec<String> = [(2002, 7, 8, 362), (1985, 4, 12, 4321)]
        .iter()
        .map(|&(y, m, d, s)| {
            brama::domain::Pesel::from_parts(y, m, d, s)
                .unwrap()
                .as_str()
                .to_string()
        })
        .collect();
    let mut ids = Vec::new();
    for (surname, pesel) in ["Dąbrowska", "Zielińska"].iter().zip(&pesels) {
        let (status, body) = server
            .post_as(
                "/api/membership/members",
                json!({
                    "imie": "Anna", "nazwisko": surname, "wyksztalcenie": "Wyższe",
                    "pesel": pesel, "wojewodztwo": "Świętokrzyskie", "miejscowosc": "Skarżysko-Kamienna",
                    "ulica": "Długa", "nrdomulokalu": "12/3", "kodpocztowy": "26-110",
                    "email": "anna.dabrowska-zielinska@example.com", "tel": "600100200",
                }),
                &token,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["_id"].as_str().unwrap().to_string());
    }
    let masked: Vec<String> = pesels
        .iter()
        .map(|p| format!("*******{}", &p[7..]))
        .collect();
    let cell = |row: usize| format!("#members-table tbody tr:nth-child({row}) .pesel-value");
    let reveal = |row: usize| format!("#members-table tbody tr:nth-child({row}) .reveal");

    b.goto(&server.url("/")).await;
    b.wait("body[data-ready='true']").await;
    b.wait_text_is(&cell(1), &masked[0]).await;
    b.wait_text_is(&cell(2), &masked[1]).await;
    let listed = b.text("#members-table tbody").await;
    assert!(
        pesels.iter().all(|p| !listed.contains(p.as_str())),
        "a whole PESEL in the list: {listed}"
    );
    assert_eq!(b.text("#member-export").await, "Eksport CSV");
    assert_eq!(b.text("#member-export-xlsx").await, "Eksport Excel");
    b.assert_fits("#members .table-wrap").await;

    // One PESEL shown on purpose, and the server knows who looked.
    assert_eq!(b.text(&reveal(1)).await, "Pokaż");
    b.click(&reveal(1)).await;
    b.wait_text_is(&cell(1), &pesels[0]).await;
    assert_eq!(b.text(&reveal(1)).await, "Ukryj");
    assert_eq!(b.text(&cell(2)).await, masked[1], "only the one asked for");
    let (_, audit) = server.get("/api/admin/audit", Some(&token)).await;
    let reads: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "member.pesel_read")
        .collect();
    assert_eq!(reads.len(), 1, "{audit}");
    assert_eq!(reads[0]["target"], ids[0].as_str());
    b.click(&reveal(1)).await;
    b.wait_text_is(&cell(1), &masked[0]).await;

    // On a phone: each member a card, nothing wider than the screen, even with a PESEL shown.
    b.resize(390, 844).await;
    b.assert_fits("#members .table-wrap").await;
    b.click(&reveal(2)).await;
    b.wait_text_is(&cell(2), &pesels[1]).await;
    b.assert_fits("#members .table-wrap").await;
    b.screenshot(&shot("members-phone")).await;

    // "Eksport Excel" asks for the workbook: the audit trail says so.
    b.click("#member-export-xlsx").await;
    let mut exported = Value::Null;
    for _ in 0..100 {
        let (_, audit) = server.get("/api/admin/audit", Some(&token)).await;
        if let Some(e) = audit
            .as_array()
            .and_then(|a| a.iter().find(|e| e["action"] == "member.export"))
        {
            exported = e.clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(exported["target"], "2 members as xlsx", "{exported}");
    b.close().await;
}

/// Logs out from the account card and waits for the log-in form.
async fn log_out(b: &Browser) {
    b.click("#logout").await;
    b.click("#tab-login").await;
    b.wait("#login-form").await;
}

/// The password step of a login whose account has a second factor: the page asks for it.
async fn password_step(b: &Browser, username: &str) {
    b.fill("#login-username", username).await;
    b.fill("#login-password", PASSWORD).await;
    b.click("#login").await;
    b.wait("#mfa-step").await;
}

/// SPEC §13 in the page, as a person does it: the authenticator app enrolled from its QR code
/// and secret, the recovery codes shown once and downloaded, a passkey added (Chromium's virtual
/// authenticator, through WebDriver), then four logins: code, passkey as the second step,
/// passkey alone ("Zaloguj kluczem dostępu"), recovery code; at 1280 and 390 px. Passkeys need a
/// host name, so the page is opened at `localhost` (brama's relying party when `public_url` is
/// an IP address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_in_the_page_app_recovery_codes_and_passkeys() {
    let Some((_db, server, b)) = setup("e2e-mfa").await else {
        return;
    };
    let authenticator = b.add_virtual_authenticator().await;
    let home = server.url("/").replace("127.0.0.1", "localhost");
    b.goto(&home).await;
    b.wait("body[data-ready='true']").await;
    assert_eq!(b.text("#passkey-login").await, "Zaloguj kluczem dostępu");
    b.click("#tab-register").await;
    b.fill("#register-username", "zofia").await;
    b.fill("#register-email", "zofia@example.com").await;
    b.fill("#register-password", PASSWORD).await;
    b.click("#register").await;
    b.wait_text("#who", "zofia").await;
    b.wait_text("#mfa-summary", "wyłączona").await;
    b.wait_text("#passkey-list", "Brak kluczy dostępu").await;

    // The authenticator app: QR code and secret, confirmed with a code from the secret.
    b.click("#totp-start").await;
    b.wait("#totp-qr").await;
    let qr = b
        .eval("const i = document.getElementById('totp-qr'); return [i.src.slice(0, 26), i.naturalWidth]")
        .await;
    assert_eq!(qr[0], "data:image/svg+xml;base64,", "{qr}");
    assert!(
        qr[1].as_i64().unwrap_or_default() > 0,
        "the QR code renders: {qr}"
    );
    let secret = b.text("#totp-secret").await.replace(' ', "");
    assert_eq!(secret.len(), 32, "{secret}");
    b.fill("#totp-code", &crate::mfa::code(&secret, 0)).await;
    b.assert_fits("#security").await;
    b.screenshot(&shot("mfa-enrol")).await;
    b.click("#totp-confirm").await;

    // Ten recovery codes, once, with a .txt of the same codes.
    b.wait("#recovery-box").await;
    let codes: Vec<String> = b
        .eval(
            "return [...document.querySelectorAll('#recovery-list li')].map(li => li.textContent)",
        )
        .await
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    b.eval(
        "window.__downloads = []; const make = URL.createObjectURL; \
         URL.createObjectURL = (blob) => { window.__downloads.push(blob); return make(blob); }; return null",
    )
    .await;
    b.click("#recovery-download").await;
    let file = b
        .eval("return window.__downloads[0].text()")
        .await
        .as_str()
        .expect("the downloaded text")
        .to_string();
    for code in &codes {
        assert!(file.contains(code), "{code} missing from {file}");
    }
    assert!(file.contains("zofia"), "{file}");
    b.wait_text("#mfa-summary", "włączona").await;
    b.click("#recovery-done").await;
    b.wait_text_is("#recovery-list", "").await;

    // A passkey, from the virtual authenticator; discoverable, so it can sign in alone too.
    b.fill("#passkey-name", "Laptop").await;
    b.click("#passkey-add").await;
    b.wait_text("#passkey-list", "Laptop").await;
    b.wait_text("#passkey-list", "jeszcze nieużyty").await;
    let held = b.virtual_credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["isResidentCredential"], true, "{held:?}");
    assert_eq!(held[0]["rpId"], "localhost", "{held:?}");
    b.resize(390, 844).await;
    b.assert_fits("#security").await;
    b.resize(1280, 900).await;

    // 1. Password, then a wrong and a right code from the app.
    log_out(&b).await;
    password_step(&b, "zofia").await;
    b.wait_text("#mfa-step-hint", "kod z aplikacji").await;
    assert_eq!(b.text("#mfa-passkey").await, "Użyj klucza dostępu");
    b.screenshot(&shot("mfa-second-step")).await;
    b.fill("#mfa-code", "000000").await;
    b.click("#mfa-verify").await;
    b.wait_text("#message", "Nieprawidłowy lub już użyty kod")
        .await;
    b.fill("#mfa-code", &crate::mfa::code(&secret, 1)).await;
    b.click("#mfa-verify").await;
    b.wait_text("#who", "zofia").await;

    // 2. Password, then the passkey, on a phone.
    log_out(&b).await;
    b.resize(390, 844).await;
    password_step(&b, "zofia").await;
    b.assert_fits("#mfa-step").await;
    b.screenshot(&shot("mfa-second-step-phone")).await;
    b.click("#mfa-passkey").await;
    b.wait_text("#who", "zofia").await;
    b.wait_text("#passkey-list", "ostatnio użyty").await;
    b.resize(1280, 900).await;

    // 3. The passkey alone.
    log_out(&b).await;
    b.click("#passkey-login").await;
    b.wait_text("#who", "zofia").await;

    // 4. Password, then a recovery code (spent: one fewer left).
    log_out(&b).await;
    password_step(&b, "zofia").await;
    b.fill("#mfa-code", &codes[3]).await;
    b.click("#mfa-verify").await;
    b.wait_text("#who", "zofia").await;
    b.wait_text("#mfa-summary", "Pozostałe kody odzyskiwania: 9")
        .await;

    // In English, then the passkey removed.
    b.click("#lang").await;
    b.wait_text("#security-title", "Sign-in security").await;
    b.click("#passkey-list button").await;
    b.wait_text("#confirm-text", "Remove the passkey Laptop?")
        .await;
    b.click("#confirm-yes").await;
    b.wait_text("#passkey-list", "No passkeys").await;
    b.close().await;
}

/// SPEC §15's "Moje konto" for everyone, as a person uses it: name, password (a wrong current
/// one shown at its field), email change through the link in the outbox, sessions, the data
/// export as a .json file, and deleting the account; at 1280 and 390 px.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_account_profile_password_email_sessions_data() {
    let Some((db, server, b)) = setup("e2e-account").await else {
        return;
    };
    // The organization's first account is its owner, and its last owner cannot leave: Marta
    // comes second.
    let (status, _) = server
        .post(
            "/api/auth/register",
            json!({ "username": "szefowa", "email": "szefowa@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200);
    register_in_page(&b, &server, "marta").await;
    assert_eq!(b.eval("return document.title").await, "Moje konto · brama");
    assert_eq!(
        b.eval("return document.activeElement.id").await,
        "account-title"
    );

    b.click("#profile-panel summary").await;
    b.fill("#profile-name", "Marta").await;
    b.fill("#profile-surname", "Wiśniewska").await;
    b.click("#profile-save").await;
    b.wait_text("#me-data", "Marta Wiśniewska").await;

    b.click("#password-panel summary").await;
    b.fill("#pw-currentPassword", "Nie!To0Haslo").await;
    b.fill("#pw-newPassword", "Nowe!Haslo42").await;
    b.click("#password-save").await;
    // Shown at its field, the field marked invalid.
    b.wait_text("#err-pw-currentPassword", "Obecne hasło jest nieprawidłowe")
        .await;
    let invalid = b
        .eval("return document.getElementById('pw-currentPassword').getAttribute('aria-invalid')")
        .await;
    assert_eq!(invalid, "true");
    b.fill("#pw-currentPassword", PASSWORD).await;
    b.click("#password-save").await;
    b.wait_text("#message", "Hasło zostało zmienione").await;

    b.click("#email-panel summary").await;
    b.fill("#em-newEmail", "marta.w@example.org").await;
    b.fill("#em-currentPassword", "Nowe!Haslo42").await;
    b.click("#email-save").await;
    b.wait_text("#message", "Wysłaliśmy link na nowy adres")
        .await;
    b.click("#sessions-panel summary").await;
    b.wait_text("#session-list", "to urządzenie").await;
    b.assert_fits("#account").await;
    b.screenshot(&shot("account")).await;
    b.resize(390, 844).await;
    b.assert_fits("#account").await;
    b.screenshot(&shot("account-phone")).await;
    b.resize(1280, 900).await;

    // The link from the email, opened in the same browser: the address changes, the session stays.
    let link = outbox_link(&db, "/confirm-email#token=").await;
    b.goto(&link).await;
    b.wait_text("#confirm-email-text", "Adres e-mail został zmieniony")
        .await;
    b.wait_text("#me-data", "marta.w@example.org").await;

    // The data export as a .json file.
    b.click("#data-panel summary").await;
    b.eval(
        "window.__downloads = []; const make = URL.createObjectURL; \
         URL.createObjectURL = (blob) => { window.__downloads.push(blob); return make(blob); }; return null",
    )
    .await;
    b.click("#export-me").await;
    let mut exported = Value::Null;
    for _ in 0..100 {
        exported = b
            .eval("return window.__downloads.length ? window.__downloads[0].text() : null")
            .await;
        if exported.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let exported: Value = serde_json::from_str(exported.as_str().expect("the export")).unwrap();
    assert_eq!(
        exported["account"]["email"], "marta.w@example.org",
        "{exported}"
    );

    // Deleting the account: password, a confirmation, then logged out for good.
    b.fill("#del-password", "Nowe!Haslo42").await;
    b.click("#delete-me").await;
    b.click("#confirm-yes").await;
    b.wait_text("#who", "Nie zalogowano").await;
    let (status, _) = server
        .post(
            "/api/auth/login",
            json!({ "username": "marta", "password": "Nowe!Haslo42" }),
        )
        .await;
    assert_eq!(status, 401);
    b.close().await;
}

/// SPEC §15's Konta and Dziennik for admins: the organization's accounts searched, a role
/// changed after a confirmation (never one's own), and the audit log as sentences, filtered by
/// event and by who did it; at 1280 and 390 px, in Polish and English.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_audit_log_for_admins() {
    let Some((_db, server, b)) = setup("e2e-admin").await else {
        return;
    };
    for name in ["szef", "ola", "piotr"] {
        let (status, _) = server
            .post(
                "/api/auth/register",
                json!({ "username": name, "email": format!("{name}@example.org"), "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 200);
    }
    b.goto(&server.url("/")).await;
    b.wait("body[data-ready='true']").await;
    b.fill("#login-username", "szef").await;
    b.fill("#login-password", PASSWORD).await;
    b.click("#login").await;
    b.wait_text("#who", "właściciel").await;

    // The register's sorted column says so to assistive technology.
    b.wait("#members-table th[aria-sort='ascending'] button[data-sort='nazwisko']")
        .await;

    // Konta: everyone of the organization, searchable; one's own row cannot be changed.
    b.wait_text("#account-list", "piotr").await;
    let own = b
        .eval("return document.querySelector('select[aria-label=\"Rola: szef\"]').disabled")
        .await;
    assert_eq!(own, true);
    b.fill("#accounts-q", "OLA").await;
    let rows = b
        .eval("return document.querySelectorAll('#account-list li').length")
        .await;
    assert_eq!(rows, 1);
    b.select("select[aria-label=\"Rola: ola\"]", "moderator")
        .await;
    b.click("button[aria-label=\"Zastosuj: ola\"]").await;
    b.wait_text("#confirm-text", "Zmienić konto ola?").await;
    b.click("#confirm-yes").await;
    b.wait_text("#message", "ola").await;
    // Read back from the server after the change.
    for _ in 0..100 {
        let role = b
            .eval(
                "return document.querySelector('select[aria-label=\"Rola: ola\"]')?.value ?? null",
            )
            .await;
        if role == "moderator" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    b.eval(
        "const q = document.getElementById('accounts-q'); q.value = ''; \
         q.dispatchEvent(new Event('input')); return null",
    )
    .await;
    b.wait_text("#account-list", "piotr").await;
    b.screenshot(&shot("accounts")).await;

    // Dziennik: sentences, newest first, filtered.
    b.wait_text("#journal-list", "szef: zmiana roli lub statusu konta (ola)")
        .await;
    b.select("#journal-action", "login").await;
    b.wait_text("#journal-list", "szef: logowanie").await;
    let lines = b
        .eval("return [...document.querySelectorAll('#journal-list li')].map(li => li.textContent)")
        .await;
    assert!(
        lines
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l.as_str().unwrap().contains(": logowanie")),
        "{lines}"
    );
    b.select("#journal-action", "").await;
    b.wait_text("#journal-list", "rejestracja konta").await;
    b.screenshot(&shot("journal")).await;

    b.resize(390, 844).await;
    b.assert_fits("#accounts").await;
    b.assert_fits("#journal").await;
    b.eval("document.getElementById('accounts').scrollIntoView(); return null")
        .await;
    b.screenshot(&shot("accounts-phone")).await;
    b.resize(1280, 900).await;

    b.click("#lang").await;
    b.wait_text("#journal-list", "szef: role or status changed (ola)")
        .await;
    b.wait_text("#accounts-title", "Accounts").await;
    b.close().await;
}

/// An unknown address in a browser is the page's own "no such page" with 404 (an API client still
/// gets the JSON refusal); the seed's action panel is for signed-in people only; a banner goes
/// when the language or the tab changes; field errors carry no JSON field names; passwords can
/// be shown; /reset without a token explains itself and leads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_banners_and_field_errors_in_the_page() {
    let Some((_db, server, b)) = setup("e2e-walk").await else {
        return;
    };
    let http = reqwest::Client::new();
    let r = http
        .get(server.url("/no/such/page"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = http.get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    b.goto(&server.url("/no/such/page")).await;
    b.wait_text("#not-found-title", "Nie ma takiej strony")
        .await;
    let panels = b
        .eval("return ['auth', 'actions'].map(id => document.getElementById(id).hidden)")
        .await;
    assert_eq!(panels, json!([true, true]));

    b.goto(&server.url("/")).await;
    b.wait("body[data-ready='true']").await;
    // Before signing in, of the seed's actions only Csrf (its login's first step) is offered.
    let actions = b
        .eval("return ['me', 'refresh', 'csrf'].map(id => document.getElementById(id).hidden)")
        .await;
    assert_eq!(actions, json!([true, true, false]));
    // Registration errors: each at its field, in Polish, without the JSON name.
    b.click("#tab-register").await;
    b.fill("#register-username", "ab cd").await;
    b.fill("#register-email", "x@y").await;
    b.fill("#register-password", "krotkie").await;
    b.click("#register").await;
    b.wait_text("#message", "Popraw zaznaczone pola").await;
    let errors = b
        .eval(
            "return ['username', 'email', 'password'].map(f => \
             document.getElementById('err-register-' + f).textContent)",
        )
        .await;
    for e in errors.as_array().unwrap() {
        let e = e.as_str().unwrap();
        assert!(!e.is_empty() && !e.contains(':'), "{errors}");
    }
    // A name in use: at its field, marked invalid.
    let (status, _) = server
        .post(
            "/api/auth/register",
            json!({ "username": "zajety", "email": "zajety@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200);
    b.fill("#register-username", "zajety").await;
    b.fill("#register-email", "inny@example.org").await;
    b.fill("#register-password", PASSWORD).await;
    b.click("#register").await;
    b.wait_text("#err-register-username", "zajęta").await;
    let invalid = b
        .eval("return document.getElementById('register-username').getAttribute('aria-invalid')")
        .await;
    assert_eq!(invalid, "true");
    // The banner goes with a change of tab, and with a change of language.
    b.click("#tab-login").await;
    let hidden = b
        .eval("return document.getElementById('message').hidden")
        .await;
    assert_eq!(hidden, true);
    b.fill("#login-username", "zajety").await;
    b.fill("#login-password", "Zle!haslo1").await;
    b.click("#login").await;
    b.wait_text("#message", "Nieprawidłowa").await;
    // At the fields too: under the password, both marked (it does not say which one is wrong).
    let marked = "return [document.getElementById('err-' + arguments_[0] + '-password').textContent, \
                  ...['username', 'password', 'email'].map(f => \
                  document.getElementById(arguments_[0] + '-' + f)?.getAttribute('aria-invalid') ?? null)]";
    let login_marks = b.eval(&marked.replace("arguments_[0]", "'login'")).await;
    assert_eq!(
        login_marks,
        json!([
            "Nieprawidłowa nazwa użytkownika lub hasło",
            "true",
            "true",
            null
        ]),
    );
    b.click("#lang").await;
    let hidden = b
        .eval("return document.getElementById('message').hidden")
        .await;
    assert_eq!(hidden, true);
    let login_marks = b.eval(&marked.replace("arguments_[0]", "'login'")).await;
    assert_eq!(
        login_marks,
        json!(["", null, null, null]),
        "errors go with the language"
    );
    b.click("#lang").await;
    // The company tab's log-in the same way.
    b.click("#tab-company").await;
    b.fill("#company-email", "zajety@example.org").await;
    b.fill("#company-password", "Zle!haslo1").await;
    b.click("#company-login").await;
    b.wait_text("#err-company-password", "Nieprawidłowa").await;
    let company_marks = b.eval(&marked.replace("arguments_[0]", "'company'")).await;
    assert_eq!(
        company_marks,
        json!([
            "Nieprawidłowa nazwa użytkownika lub hasło",
            null,
            "true",
            "true"
        ]),
    );
    b.click("#tab-login").await;

    // The tabs follow the WAI-ARIA pattern: one Tab stop, arrows, Home and End.
    let tab = b.wait("#tab-login").await;
    tab.send_keys("\u{E014}").await.expect("ArrowRight");
    let state = "return [document.activeElement.id, \
                 document.getElementById('register-form').hidden, \
                 [...document.querySelectorAll('[role=tab]')].map(t => t.tabIndex)]";
    assert_eq!(
        b.eval(state).await,
        json!(["tab-register", false, [-1, 0, -1, -1]])
    );
    let tab = b.wait("#tab-register").await;
    tab.send_keys("\u{E010}").await.expect("End");
    assert_eq!(
        b.eval("return document.activeElement.id").await,
        "tab-forgot"
    );
    let tab = b.wait("#tab-forgot").await;
    tab.send_keys("\u{E014}").await.expect("ArrowRight wraps");
    assert_eq!(
        b.eval("return document.activeElement.id").await,
        "tab-login"
    );
    assert!(
        b.eval("return document.title")
            .await
            .as_str()
            .unwrap()
            .ends_with("· brama"),
        "a title per view"
    );

    // A password can be shown while typed, and hidden again.
    let kind = "return document.getElementById('login-password').type";
    b.click("#login-form button.show-password").await;
    assert_eq!(b.eval(kind).await, "text");
    b.click("#login-form button.show-password").await;
    assert_eq!(b.eval(kind).await, "password");

    // /reset without a token says what to do, shows the password rules and a way back.
    b.goto(&server.url("/reset")).await;
    b.wait_text("#message", "Nie pamiętam hasła").await;
    b.wait_text("#hint-reset-password", "bez polskich liter")
        .await;
    assert_eq!(b.eval("return document.title").await, "Nowe hasło · brama");
    assert_eq!(
        b.eval("return document.activeElement.id").await,
        "reset-title"
    );
    b.click("#reset-view a.button-link").await;
    b.wait("#login-form").await;
    b.close().await;
}

/// axe-core (vendored from npm into tests/fixtures, never fetched) on the page as it is: the
/// serious and critical violations of a view, as `rule: selectors`.
async fn axe_violations(b: &Browser) -> Vec<String> {
    let axe = include_str!("../fixtures/axe-core/axe.min.js");
    if b.eval("return typeof window.axe").await != "object" {
        b.client
            .execute(&format!("{axe}\nreturn null;"), Vec::new())
            .await
            .expect("axe-core loads");
    }
    let result = b
        .eval(
            "return axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations \
             .filter(v => v.impact === 'serious' || v.impact === 'critical') \
             .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))",
        )
        .await;
    result
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every view of the page, at 1280 and at 390 px, has no serious or critical axe-core
/// violation: log-in and its tabs, the second step, the signed-in start page with Moje konto,
/// the second factor, the register, Konta and Dziennik, the member dialog, /activate, /reset,
/// /confirm-email and an unknown address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_passes_axe_at_both_widths() {
    let Some((_db, server, b)) = setup("e2e-axe").await else {
        return;
    };
    let mut found = Vec::new();
    let mut check = async |b: &Browser, view: &str| {
        for (width, height) in [(1280, 900), (390, 844)] {
            b.resize(width, height).await;
            for v in axe_violations(b).await {
                found.push(format!("{view} at {width} px: {v}"));
            }
        }
        b.resize(1280, 900).await;
    };
    for path in ["/activate", "/reset", "/confirm-email", "/no/such/page"] {
        b.goto(&server.url(path)).await;
        b.wait("body[data-ready='true']").await;
        check(&b, path).await;
    }
    b.goto(&server.url("/")).await;
    b.wait("body[data-ready='true']").await;
    check(&b, "log-in").await;
    for tab in ["register", "company", "forgot"] {
        b.click(&format!("#tab-{tab}")).await;
        check(&b, tab).await;
    }
    register_in_page(&b, &server, "ala").await;
    for panel in ["profile", "password", "email", "sessions", "data"] {
        b.click(&format!("#{panel}-panel summary")).await;
    }
    b.wait_text("#journal-list", "ala").await;
    check(&b, "signed in, every panel open").await;
    b.click("#member-add").await;
    b.wait("#member-dialog").await;
    check(&b, "member dialog").await;
    b.click("#member-cancel").await;
    b.click("#totp-start").await;
    b.wait("#totp-qr").await;
    check(&b, "authenticator enrolment").await;
    let secret = b.text("#totp-secret").await.replace(' ', "");
    b.fill("#totp-code", &crate::mfa::code(&secret, 0)).await;
    b.click("#totp-confirm").await;
    b.wait("#recovery-box:not([hidden])").await;
    check(&b, "recovery codes").await;
    b.click("#logout").await;
    b.wait_text("#who", "Nie zalogowano").await;
    b.click("#tab-login").await;
    b.fill("#login-username", "ala").await;
    b.fill("#login-password", PASSWORD).await;
    b.click("#login").await;
    b.wait("#mfa-step:not([hidden])").await;
    check(&b, "the second step").await;
    assert!(found.is_empty(), "axe-core found:\n{}", found.join("\n"));
    b.close().await;
}

/// An activation link that no longer works offers a new one on the spot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_link_that_no_longer_works_offers_a_new_one() {
    let Some((_db, server, b)) = setup("e2e-resend").await else {
        return;
    };
    b.goto(&server.url("/activate#token=used-or-expired")).await;
    b.wait("#activate-view:not([hidden])").await;
    b.fill("#activate-name", "Jan").await;
    b.fill("#activate-password", PASSWORD).await;
    b.click("#activate").await;
    b.wait("#resend-form").await;
    b.fill("#resend-email", "szef@firma.pl").await;
    b.click("#resend").await;
    b.wait_text("#message", "wysłaliśmy nowy link").await;
    b.close().await;
}

/// The focus ring of whatever has the keyboard focus: `[what, outline style, width in px,
/// contrast against the surface it is drawn on, a mark of the element]`, or null on the body. The ring sits outside the
/// element (outline-offset), so the surface is the first ancestor with a background of its own.
const FOCUS_RING: &str = "
const el = document.activeElement;
if (!el || el === document.body || el === document.documentElement) return null;
const rgb = (c) => { const m = c.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
let surface = [255, 255, 255, 1];
for (let n = el.parentElement; n; n = n.parentElement) {
  const c = rgb(getComputedStyle(n).backgroundColor);
  if (c[3] > 0) { surface = c; break; }
}
const s = getComputedStyle(el);
const [hi, lo] = [lum(rgb(s.outlineColor)), lum(surface)].sort((a, b) => b - a);
const what = el.id || `${el.tagName.toLowerCase()}.${el.className} ${(el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 30)}`;
window.__walk = window.__walk ?? 0;
el.dataset.walk = el.dataset.walk ?? String(++window.__walk);
return [what, s.outlineStyle, parseFloat(s.outlineWidth), (hi + 0.05) / (lo + 0.05), el.dataset.walk];";

/// Walks the page with the Tab key (at most `limit` presses, until the focus comes round to a
/// stop it has seen) and returns the stops and every stop whose focus ring is missing, thinner
/// than 2 px or under 3:1.
async fn weak_focus_rings(b: &Browser, view: &str, limit: usize) -> (Vec<String>, Vec<String>) {
    let mut seen = Vec::new();
    let mut stops = Vec::new();
    let mut weak = Vec::new();
    for _ in 0..limit {
        b.press('\u{E004}').await;
        let ring = b.eval(FOCUS_RING).await;
        // Past the last stop the focus leaves the document for a moment, then comes round.
        let Some(ring) = ring.as_array() else {
            continue;
        };
        let what = ring[0].as_str().unwrap_or_default().to_string();
        let mark = ring[4].as_str().unwrap_or_default().to_string();
        if seen.contains(&mark) {
            break;
        }
        let (style, width, contrast) = (
            ring[1].as_str().unwrap_or_default(),
            ring[2].as_f64().unwrap_or_default(),
            ring[3].as_f64().unwrap_or_default(),
        );
        if style == "none" || width < 2.0 || contrast < 3.0 {
            weak.push(format!(
                "{view}: {what}: {style} {width}px, {contrast:.2}:1"
            ));
        }
        seen.push(mark);
        stops.push(what);
    }
    (stops, weak)
}

/// Whether the dialog fits the window and its Save button is on screen without scrolling.
const DIALOG_FITS: &str = "
const d = document.getElementById('member-dialog').getBoundingClientRect();
const s = document.getElementById('member-save').getBoundingClientRect();
return [d.left >= 0 && d.right <= innerWidth && d.top >= 0 && d.bottom <= innerHeight,
        s.top >= 0 && s.bottom <= innerHeight && s.right <= innerWidth, [d.left, d.right, s.top, s.bottom, innerWidth, innerHeight]]";

/// Every visible time and address that the page broke across lines.
const BROKEN_WORDS: &str = "
return [...document.querySelectorAll('time, .email')]
  .filter((el) => el.getClientRects().length > 1)
  .map((el) => el.textContent)";

/// Issue 16's phone and keyboard checks: at 360, 390 and 414 px nothing pans sideways, the
/// member dialog fits with Save on screen, and no time or address breaks mid-word; at 1280 px the
/// log-in tabs stay on one row in both languages; walking every view with Tab, each stop has a
/// focus ring of at least 2 px and 3:1 contrast against what surrounds it; education levels read
/// in English on the English page (the stored value stays Polish).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_from_360_to_414_keyboard_focus_and_texts() {
    let Some((_db, server, b)) = setup("e2e-phones").await else {
        return;
    };
    b.goto(&server.url("/")).await;
    b.wait("body[data-ready='true']").await;
    let tab_rows =
        "return new Set([...document.querySelectorAll('[role=tab]')].map(t => t.offsetTop)).size";
    assert_eq!(b.eval(tab_rows).await, 1, "the tabs wrap at 1280 px");
    let (stops, mut weak) = weak_focus_rings(&b, "log-in", 30).await;
    assert!(stops.len() >= 5, "Tab stops on the log-in view: {stops:?}");
    b.click("#lang").await;
    b.wait_text("#tab-forgot", "Forgot").await;
    assert_eq!(b.eval(tab_rows).await, 1, "the English tabs wrap");
    b.click("#lang").await;
    for (width, height) in [(360, 740), (390, 844), (414, 896)] {
        b.resize(width, height).await;
        b.assert_fits("#auth").await;
    }
    b.resize(1280, 900).await;

    register_in_page(&b, &server, "aleksandra").await;
    let (status, login) = server
        .post(
            "/api/auth/login",
            json!({ "username": "aleksandra", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["accessToken"].as_str().unwrap().to_string();
    let (status, _) = server
        .post(
            "/api/auth/register",
            json!({ "username": "bartosz.wisniewski", "email": "bartosz.wisniewski@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server
        .post_as(
            "/api/membership/members",
            json!({
                "imie": "Ewa", "nazwisko": "Kot", "wyksztalcenie": "Policealne",
                "pesel": brama::domain::Pesel::from_parts(1990, 1, 2, 345).unwrap().as_str(),
                "wojewodztwo": "Mazowieckie", "miejscowosc": "Warszawa", "ulica": "Długa",
                "nrdomulokalu": "1", "kodpocztowy": "00-001", "email": "ewa.kot@example.pl",
                "tel": "600100200",
            }),
            &token,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // The page sees the new account and member; every panel of Moje konto open.
    b.goto(&server.url("/")).await;
    b.wait_text("#account-list", "bartosz.wisniewski@example.org")
        .await;
    b.wait_text("#members-table", "ewa.kot@example.pl").await;
    for panel in ["profile", "password", "email", "sessions", "data"] {
        b.click(&format!("#{panel}-panel summary")).await;
    }
    b.wait("#session-list time").await;
    b.wait("#journal-list time").await;

    for (width, height) in [(360, 740), (390, 844), (414, 896)] {
        b.resize(width, height).await;
        b.assert_fits("#account").await;
        b.assert_fits("#accounts").await;
        b.assert_fits("#journal").await;
        b.assert_fits("#members .table-wrap").await;
        let broken = b.eval(BROKEN_WORDS).await;
        assert_eq!(broken, json!([]), "broken mid-word at {width} px");
        b.click("#member-add").await;
        b.wait("#member-dialog[open]").await;
        let fits = b.eval(DIALOG_FITS).await;
        assert_eq!(fits[0], true, "the dialog at {width} px: {fits}");
        assert_eq!(fits[1], true, "Save off screen at {width} px: {fits}");
        if width == 360 {
            b.screenshot(&shot("member-dialog-phone")).await;
        }
        b.click("#member-cancel").await;
    }
    b.resize(1280, 900).await;

    // The keyboard walk through the signed-in page and the member dialog.
    b.eval("document.activeElement.blur(); window.scrollTo(0, 0); return null")
        .await;
    let (stops, more) = weak_focus_rings(&b, "signed in", 150).await;
    assert!(
        stops.len() >= 40,
        "Tab stops on the signed-in page: {stops:?}"
    );
    weak.extend(more);
    b.click("#member-add").await;
    b.wait("#member-dialog[open]").await;
    let (stops, more) = weak_focus_rings(&b, "member dialog", 30).await;
    assert!(stops.len() >= 12, "Tab stops in the dialog: {stops:?}");
    weak.extend(more);
    assert!(weak.is_empty(), "weak focus rings:\n{}", weak.join("\n"));

    // Education in the page's language, the value the register stores unchanged.
    let education = "return [...document.getElementById('m-wyksztalcenie').options].map(o => [o.value, o.text])";
    let pl = b.eval(education).await;
    assert_eq!(pl[6], json!(["Policealne", "Policealne"]), "{pl}");
    b.click("#member-cancel").await;
    b.click("#lang").await;
    let en = b.eval(education).await;
    assert_eq!(en[6], json!(["Policealne", "Post-secondary"]), "{en}");
    assert_eq!(en[7], json!(["Wyższe", "Higher"]), "{en}");
    b.close().await;
}

/// A small relying party for the single sign-on test (SPEC §14): another application of the
/// organization, on `localhost` while brama is on `127.0.0.1` (so the two are different
/// sites, as in life), signing its people in with the `openidconnect` crate.
mod relying_party {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Query, State};
    use axum::response::{Html, IntoResponse, Redirect, Response};
    use axum::routing::get;
    use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
    use openidconnect::{
        AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
        PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    };

    use crate::oidc::Rp;

    /// A signed-in person: (name shown, email, ID token).
    type Person = (String, String, String);

    #[derive(Clone)]
    struct Rpp {
        client: Rp,
        http: reqwest::Client,
        logout: String,
        base: String,
        /// Authorizations under way, by state: (nonce, PKCE verifier).
        pending: Arc<Mutex<HashMap<String, (Nonce, PkceCodeVerifier)>>>,
        /// Signed-in people, by session cookie: (name shown, email, ID token).
        sessions: Arc<Mutex<HashMap<String, Person>>>,
    }

    /// Starts the relying party for `client_id` on a free port; its base URL.
    pub async fn start(issuer: &str, client_id: &str, secret: &str, port: u16) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let metadata =
            CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.into()).unwrap(), &http)
                .await
                .expect("discovery");
        let base = format!("http://localhost:{port}");
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(client_id.into()),
            Some(ClientSecret::new(secret.into())),
        )
        .set_redirect_uri(RedirectUrl::new(format!("{base}/callback")).unwrap());
        let state = Rpp {
            client,
            http,
            logout: format!("{issuer}/oauth2/logout"),
            base: base.clone(),
            pending: Default::default(),
            sessions: Default::default(),
        };
        let app = axum::Router::new()
            .route("/", get(home))
            .route("/callback", get(callback))
            .route("/logout", get(logout))
            .route("/bye", get(bye))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    fn session_of(headers: &axum::http::HeaderMap) -> Option<String> {
        headers
            .get("cookie")?
            .to_str()
            .ok()?
            .split(';')
            .find_map(|c| c.trim().strip_prefix("rp=").map(str::to_owned))
    }

    async fn home(State(rp): State<Rpp>, headers: axum::http::HeaderMap) -> Response {
        let signed_in =
            session_of(&headers).and_then(|s| rp.sessions.lock().unwrap().get(&s).cloned());
        if let Some((name, email, _)) = signed_in {
            return Html(format!(
                "<!doctype html><html lang=\"pl\"><head><title>Wiki</title></head><body>\
                 <h1 id=\"rp-user\">Wiki: zalogowano jako {name}</h1><p id=\"rp-email\">{email}</p>\
                 <a id=\"rp-logout\" href=\"/logout\">Wyloguj</a></body></html>"
            ))
            .into_response();
        }
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = rp
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        rp.pending
            .lock()
            .unwrap()
            .insert(state.secret().clone(), (nonce, verifier));
        Redirect::to(url.as_str()).into_response()
    }

    async fn callback(
        State(rp): State<Rpp>,
        Query(query): Query<HashMap<String, String>>,
    ) -> Response {
        let Some((nonce, verifier)) = query
            .get("state")
            .and_then(|s| rp.pending.lock().unwrap().remove(s))
        else {
            return (axum::http::StatusCode::BAD_REQUEST, "unknown state").into_response();
        };
        let Some(code) = query.get("code") else {
            return (axum::http::StatusCode::BAD_REQUEST, format!("{query:?}")).into_response();
        };
        let tokens = rp
            .client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&rp.http)
            .await
            .expect("the code exchange");
        let id_token = tokens.id_token().expect("an ID token");
        let claims = id_token
            .claims(&rp.client.id_token_verifier(), &nonce)
            .expect("the ID token verifies");
        let name = claims
            .preferred_username()
            .map(|u| u.to_string())
            .unwrap_or_default();
        let email = claims.email().map(|e| e.to_string()).unwrap_or_default();
        let session = uuid::Uuid::new_v4().to_string();
        rp.sessions
            .lock()
            .unwrap()
            .insert(session.clone(), (name, email, id_token.to_string()));
        (
            [("set-cookie", format!("rp={session}; Path=/; HttpOnly"))],
            Redirect::to(&format!("{}/", rp.base)),
        )
            .into_response()
    }

    async fn logout(State(rp): State<Rpp>, headers: axum::http::HeaderMap) -> Response {
        let id_token = session_of(&headers)
            .and_then(|s| rp.sessions.lock().unwrap().remove(&s))
            .map(|(_, _, t)| t)
            .unwrap_or_default();
        let mut url = url::Url::parse(&rp.logout).unwrap();
        url.query_pairs_mut()
            .append_pair("id_token_hint", &id_token)
            .append_pair("post_logout_redirect_uri", &format!("{}/bye", rp.base))
            .append_pair("state", "po-wylogowaniu");
        (
            [("set-cookie", "rp=; Path=/; Max-Age=0".to_string())],
            Redirect::to(url.as_str()),
        )
            .into_response()
    }

    async fn bye(Query(query): Query<HashMap<String, String>>) -> Html<String> {
        Html(format!(
            "<!doctype html><html lang=\"pl\"><head><title>Wiki</title></head><body>\
             <h1 id=\"rp-bye\">Wiki: wylogowano</h1><p id=\"rp-state\">{}</p></body></html>",
            query.get("state").cloned().unwrap_or_default()
        ))
    }
}

/// SPEC §14 in a browser: someone not signed in opens another application of the
/// organization, lands on brama's login (which names the application), logs in, consents, and
/// is back in the application signed in. Opening it again asks nothing (single sign-on); its
/// logout ends the brama session too and returns to the application; after that brama asks
/// for the login again. At 1280 and 390 px; screenshots for the README.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_application_signs_in_through_brama() {
    let Some((_db, server, b)) = setup("e2e-oidc").await else {
        return;
    };
    let (status, _) = server
        .post(
            "/api/auth/register",
            json!({ "username": "alicja", "email": "alicja@example.org", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, login) = server
        .post(
            "/api/auth/login",
            json!({ "username": "alicja", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["accessToken"].as_str().unwrap().to_string();
    let rp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rp_base = format!("http://localhost:{rp_port}");
    let (status, registered) = server
        .post_as(
            "/api/admin/oidc-clients",
            json!({
                "name": "Wiki stowarzyszenia",
                "redirect_uris": [format!("{rp_base}/callback")],
                "post_logout_redirect_uris": [format!("{rp_base}/bye")],
            }),
            &token,
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    let issuer = server.url("").trim_end_matches('/').to_string();
    relying_party::start(
        &issuer,
        registered["client_id"].as_str().unwrap(),
        registered["client_secret"].as_str().unwrap(),
        rp_port,
    )
    .await;

    // Not signed in anywhere: the application sends the browser to brama's login.
    b.goto(&format!("{rp_base}/")).await;
    b.wait("body[data-ready='true']").await;
    b.wait_text("#oidc-notice", "Wiki stowarzyszenia").await;
    let url = b.eval("return location.pathname").await;
    assert_eq!(url, "/sign-in");
    b.screenshot(&shot("oidc-sign-in")).await;
    let mut violations = axe_violations(&b).await;
    b.resize(390, 844).await;
    b.assert_fits("#auth").await;
    violations.extend(axe_violations(&b).await);
    b.resize(1280, 900).await;
    b.fill("#login-username", "alicja").await;
    b.fill("#login-password", PASSWORD).await;
    b.click("#login").await;

    // The application is not first-party: the consent screen, once.
    b.wait("#consent-view:not([hidden])").await;
    b.wait_text("#consent-client", "Wiki stowarzyszenia").await;
    let scopes = b.text("#consent-scopes").await;
    assert!(scopes.contains("adresu e-mail"), "{scopes}");
    assert_eq!(b.text("#consent-account").await, "alicja");
    assert_eq!(
        b.eval("return document.title").await,
        "Zgoda na dostęp · brama"
    );
    b.wait_text("#who", "alicja").await;
    b.screenshot(&shot("oidc-consent")).await;
    violations.extend(axe_violations(&b).await);
    b.resize(390, 844).await;
    b.assert_fits("#consent-view").await;
    violations.extend(axe_violations(&b).await);
    b.screenshot(&shot("oidc-consent-phone")).await;
    b.resize(1280, 900).await;
    assert!(
        violations.is_empty(),
        "axe-core found:\n{}",
        violations.join("\n")
    );
    b.click("#consent-allow").await;
    b.wait_text("#rp-user", "zalogowano jako alicja").await;
    assert_eq!(b.text("#rp-email").await, "alicja@example.org");

    // Signed out of the application alone and back: brama asks nothing (single sign-on).
    b.delete_cookie("rp").await;
    b.goto(&format!("{rp_base}/")).await;
    b.wait_text("#rp-user", "alicja").await;

    // The application's logout ends the brama session and comes back with its state.
    b.click("#rp-logout").await;
    b.wait_text("#rp-bye", "wylogowano").await;
    assert_eq!(b.text("#rp-state").await, "po-wylogowaniu");
    b.goto(&format!("{rp_base}/")).await;
    b.wait("body[data-ready='true']").await;
    b.wait_text("#oidc-notice", "Wiki stowarzyszenia").await;
    b.close().await;
}
