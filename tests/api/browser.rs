//! Headless Chromium for end-to-end tests, driven over WebDriver (chromedriver).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long `wait`, `wait_text` and friends poll before failing the test.
const WAIT: Duration = Duration::from_secs(10);
/// Pause between polls: short enough to keep tests fast, long enough not to hammer chromedriver.
const POLL: Duration = Duration::from_millis(50);

/// Without these flags Chromium phones home (updates, sync, QUIC probes) and stalls in an
/// offline sandbox; `--no-sandbox` is required because tests run as root in containers.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--window-size=1280,900",
];

/// One chromedriver with one Chromium session; call `close` at the end of the test.
pub struct Browser {
    pub client: Client,
    /// Killed on drop (`kill_on_drop`); it runs in its own process group so that Drop can take
    /// Chromium down with it when the test panicked before `close`.
    driver: Child,
    driver_port: u16,
    session_id: Option<String>,
    /// Temp dir holding the fresh Chromium profile (so no cookie or storage leaks between
    /// tests) and Chromium's XDG dirs; removed on drop.
    profile: PathBuf,
    closed: bool,
}

impl Browser {
    /// Starts chromedriver on a free port and a fresh headless Chromium session. Returns None when
    /// chromium/chromedriver are not installed and CI is not "true" (prints a skip note to stderr);
    /// under CI=true a missing browser panics with a clear message.
    pub async fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            find_binary("CHROMIUM", &["chromium", "chromium-browser"]),
            find_binary("CHROMEDRIVER", &["chromedriver"]),
        ) else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but chromium and/or chromedriver are not installed (or not on PATH; \
                     CHROMIUM/CHROMEDRIVER may point at them): install the Debian packages \
                     `chromium chromium-driver`"
                );
            }
            eprintln!(
                "note: skipping browser test: chromium and chromedriver not found \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };

        let profile = std::env::temp_dir().join(format!(
            "brama-chromium-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&profile).expect("create a temporary Chromium profile directory");

        // Port 0 lets chromedriver pick a free port itself (no bind-then-release race); it
        // announces the port on stdout.
        let mut driver = Command::new(&chromedriver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Chromium keeps a crash database in $XDG_CONFIG_HOME and dconf state in
            // $XDG_CACHE_HOME regardless of --user-data-dir; keep both inside the temp dir.
            .env("XDG_CONFIG_HOME", profile.join("xdg-config"))
            .env("XDG_CACHE_HOME", profile.join("xdg-cache"))
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", chromedriver.display()));
        let stdout = driver.stdout.take().expect("chromedriver stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let driver_port = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver did not report its port within 10 s (is it the right version?)");
        // Keep draining stdout: a full pipe would block chromedriver.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.join("user-data").display()
        ));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
            // A hung page load or script should fail the test within seconds, not WebDriver's
            // default 60 s; implicit waits stay off because `wait` polls explicitly.
            "timeouts": { "script": 10_000, "pageLoad": 30_000, "implicit": 0 },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };

        // Plain-HTTP connector: chromedriver is on localhost, so fantoccini needs no TLS features.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start {}: {e}", chromium.display()));
        let session_id = client.session_id().await.ok().flatten();
        Some(Browser {
            client,
            driver,
            driver_port,
            session_id,
            profile,
            closed: false,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Waits (polling, up to 10 s) until an element matching the CSS selector exists and is displayed; returns it.
    pub async fn wait(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        // Kept for the panic message: "not found" and "the browser crashed" need different fixes.
        let mut last: String;
        loop {
            match self.client.find(Locator::Css(css)).await {
                // The element can be replaced between find and is_displayed; just poll again.
                Ok(element) => match element.is_displayed().await {
                    Ok(true) => return element,
                    Ok(false) => last = "present but not displayed".into(),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                panic!("no displayed element matches {css:?} after {WAIT:?}; last: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element's text contains `needle` (10 s), returns the text; panics with the last text seen.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last: String;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => match element.text().await {
                    Ok(text) if text.contains(needle) => return text,
                    Ok(text) => last = format!("text {text:?}"),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                panic!("{css:?} never contained {needle:?} within {WAIT:?}; last: {last}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the element's text is exactly `expected` (also for empty, undisplayed ones).
    pub async fn wait_text_is(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + WAIT;
        let script = format!(
            "return document.querySelector({:?})?.textContent ?? null",
            css
        );
        loop {
            let text = self.eval(&script).await;
            if text.as_str() == Some(expected) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{css:?} never had the text {expected:?} within {WAIT:?}; last: {text}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Chooses the option whose value is `value` in a `<select>`.
    pub async fn select(&self, css: &str, value: &str) {
        let element = self.wait(css).await;
        element
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value:?} in {css:?}: {e}"));
    }

    /// Clears the field, then types `value` into it.
    pub async fn fill(&self, css: &str, value: &str) {
        let element = self.wait(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css:?}: {e}"));
        element
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css:?}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        let element = self.wait(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css:?}: {e}"));
    }

    /// The rendered text of the element (waits for it like `wait`; hidden elements have none).
    pub async fn text(&self, css: &str) -> String {
        let element = self.wait(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|e| panic!("text of {css:?}: {e}"))
    }

    /// Resizes the window: `(390, 844)` is a phone, `(1280, 900)` the default desktop.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize the window");
    }

    /// Fails when the page is wider than the window (sideways scrolling), or when an element
    /// matching `css` is wider than its own box (a table that scrolls inside its frame).
    pub async fn assert_fits(&self, css: &str) {
        let widths = self
            .eval(&format!(
                "const el = document.querySelector({css:?}); return [document.documentElement.scrollWidth, \
                 window.innerWidth, el ? el.scrollWidth : 0, el ? el.clientWidth : 0]"
            ))
            .await;
        let w: Vec<i64> = widths
            .as_array()
            .expect("four widths")
            .iter()
            .map(|v| v.as_i64().unwrap_or_default())
            .collect();
        if w[0] > w[1] || w[2] > w[3] {
            // Name the culprits: the visible elements whose right edge passes the window's or
            // the container's.
            let wide = self
                .eval(&format!(
                    "const box = document.querySelector({css:?}); \
                     const edge = Math.min(innerWidth, box ? box.getBoundingClientRect().right : innerWidth); \
                     return [...document.querySelectorAll('body *')].filter(e => e.getClientRects().length \
                       && e.getBoundingClientRect().right > edge + 0.5).slice(-6) \
                       .map(e => `${{e.tagName}}#${{e.id}}.${{e.className}} ${{Math.round(e.getBoundingClientRect().right)}}`)"
                ))
                .await;
            panic!("{css} or the page scrolls sideways: {widths}; too wide: {wide}");
        }
    }

    /// Presses and releases one key on whatever has the focus (WebDriver actions), e.g. Tab as
    /// `'\u{E004}'`, as a person at a keyboard would.
    pub async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let keys = KeyActions::new("keyboard".to_string())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(keys)
            .await
            .unwrap_or_else(|e| panic!("press {key:?}: {e}"));
    }

    /// Saves a PNG screenshot to `path` (creating parent dirs).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("take a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Cookies visible to WebDriver (HttpOnly included) as (name, value).
    pub async fn cookies(&self) -> Vec<(String, String)> {
        let cookies = self.client.get_all_cookies().await.expect("read cookies");
        cookies
            .iter()
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect()
    }

    pub async fn delete_cookie(&self, name: &str) {
        self.client
            .delete_cookie(name)
            .await
            .unwrap_or_else(|e| panic!("delete cookie {name}: {e}"));
    }

    /// Runs JS in the page and returns its JSON result (for reading sessionStorage etc.).
    /// The script is a function body: use `return`, e.g. `return sessionStorage.getItem("k")`.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script:?} failed: {e}"))
    }

    /// A WebDriver extension command of this session (`/session/{id}/{path}`), as JSON; its
    /// `value`.
    async fn extension(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let id = self.session_id.as_deref().expect("a WebDriver session id");
        let url = format!("http://127.0.0.1:{}/session/{id}/{path}", self.driver_port);
        let mut request = reqwest::Client::new().request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        answer["value"].clone()
    }

    /// Adds a virtual platform authenticator (WebAuthn's WebDriver extension, which chromedriver
    /// implements): CTAP2, discoverable credentials, user verification that always succeeds and
    /// a user who is always present. Returns its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "automaticPresenceSimulation": true,
        });
        let id = self
            .extension(
                reqwest::Method::POST,
                "webauthn/authenticator",
                Some(options),
            )
            .await;
        id.as_str()
            .unwrap_or_else(|| panic!("no authenticator id: {id}"))
            .to_string()
    }

    /// The credentials a virtual authenticator holds (`credentialId`, `isResidentCredential`,
    /// `rpId`, `signCount`, ...).
    pub async fn virtual_credentials(&self, authenticator: &str) -> Vec<Value> {
        let path = format!("webauthn/authenticator/{authenticator}/credentials");
        match self.extension(reqwest::Method::GET, &path, None).await {
            Value::Array(list) => list,
            other => panic!("credentials of {authenticator}: {other}"),
        }
    }

    /// Ends the session (chromedriver then quits Chromium), stops chromedriver, removes the profile.
    pub async fn close(mut self) {
        // An error means the browser is already gone, which is what we want anyway.
        let _ = self.client.clone().close().await;
        self.closed = true;
        // Drop kills chromedriver and removes the profile directory.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            // Usually a panicking test. The async client cannot run here, so end the session with
            // a blocking request: chromedriver then quits Chromium cleanly.
            if let Some(id) = &self.session_id {
                delete_session_blocking(self.driver_port, id);
            }
        }
        // A SIGKILLed chromedriver leaves Chromium running as an orphan, so if the session could
        // not be ended, only killing the whole process group gets rid of it.
        if let Some(pid) = self.driver.id() {
            // SAFETY: a plain syscall. The group id is chromedriver's pid (`process_group(0)`),
            // which cannot have been reused while the unreaped child is still ours, so this
            // only reaches processes this Browser started.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
        let _ = self.driver.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/{id}` without an async runtime, bounded by short timeouts.
fn delete_session_blocking(port: u16, session_id: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    ) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let request = format!(
        "DELETE /session/{session_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // chromedriver answers only after it has quit Chromium, so the first bytes of the reply
        // are enough; reading to EOF would wait for a keep-alive timeout.
        let _ = stream.read(&mut [0; 1024]);
    }
}

/// The binary named by `env_var`, else the first of `names` found on PATH.
fn find_binary(env_var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Distinguishes profile directories of browsers started in parallel within one process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
