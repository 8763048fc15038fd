//! Test harness: starts the real application on a free port against a fresh SQLite file or a
//! fresh PostgreSQL database, talks HTTP to it, and checks that no secret the test saw ever
//! reached the log.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use brama::core::Core;
use brama::{Application, Config};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// A password that passes the seed policy and is not in the common list.
pub const PASSWORD: &str = "Zx8!quokka";

/// Every log line of the test process, at DEBUG for brama.
static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = LogWriter(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("debug,sqlx=debug,hyper=info,h2=info,reqwest=info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
    .clone()
}

/// The text logged so far by this test process.
pub fn log_text() -> String {
    String::from_utf8_lossy(&capture_logs().lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server for tests, from `BRAMA_TEST_POSTGRES_URL`. Without it the PostgreSQL
/// leg is skipped, except under `CI=true`, where that is a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("BRAMA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but BRAMA_TEST_POSTGRES_URL is not set: the PostgreSQL leg cannot be skipped"
            );
            eprintln!("skipping PostgreSQL leg: BRAMA_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A database made for one test and dropped after it.
pub struct TestDb {
    pub url: String,
    dir: PathBuf,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let dir =
            std::env::temp_dir().join(format!("brama-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.join("brama.db").display());
                Some(TestDb { url, dir, pg: None })
            }
            Backend::Postgres => {
                let admin = postgres_url()?;
                let name = format!("brama_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx_connect(&admin).await;
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("CREATE DATABASE");
                let url = with_database(&admin, &name);
                Some(TestDb {
                    url,
                    dir,
                    pg: Some((admin, name)),
                })
            }
        }
    }

    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    pub fn backend(&self) -> Backend {
        if self.pg.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }

    /// Runs one statement with text binds directly on the test's database (to age rows as
    /// time would).
    pub async fn execute(&self, statement: &str, binds: &[&str]) {
        use sqlx::Connection;
        let url = self.url.clone();
        match self.backend() {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                let mut q = sqlx::query(statement);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(&mut conn).await.expect("statement");
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("postgres");
                let mut q = sqlx::query(statement);
                for b in binds {
                    q = q.bind(*b);
                }
                q.execute(&mut conn).await.expect("statement");
            }
        }
    }

    /// The first column of the first row of a query with text binds, as text (`NULL` is `None`).
    pub async fn query_text(&self, statement: &str, binds: &[&str]) -> Option<String> {
        use sqlx::Connection;
        let url = self.url.clone();
        match self.backend() {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                let mut q = sqlx::query_scalar::<_, Option<String>>(statement);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_optional(&mut conn).await.expect("query").flatten()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("postgres");
                let mut q = sqlx::query_scalar::<_, Option<String>>(statement);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_optional(&mut conn).await.expect("query").flatten()
            }
        }
    }
}

async fn sqlx_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!("PostgreSQL at BRAMA_TEST_POSTGRES_URL is not reachable: {e}"),
    }
}

/// The admin URL with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("BRAMA_TEST_POSTGRES_URL is a URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs outside any runtime guarantee, so use a short-lived one of our own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    let mut conn = sqlx_connect(&admin).await;
                    let _ = sqlx::Executor::execute(
                        &mut conn,
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                    )
                    .await;
                });
            })
            .join();
        }
    }
}

/// Settings for tests: cheap argon2 (the real parameters are exercised by the hasher's own
/// tests and the benchmarks), generous limits unless a test lowers them.
pub fn test_config(db: &TestDb) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        data_dir: db.dir().clone(),
        database_url: Some(db.url.clone()),
        argon2_memory_kib: 256,
        argon2_iterations: 1,
        failed_logins_per_account: 1000,
        failed_logins_per_ip: 1000,
        registrations_per_ip_per_hour: 1000,
        ..Config::default()
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The `message` field of the body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
    /// The value of a cookie the response sets, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookie_header(name)
            .and_then(|h| h.split(';').next().map(str::to_owned))
            .and_then(|kv| kv.split_once('=').map(|(_, v)| v.to_owned()))
    }
    /// The whole `Set-Cookie` header for a cookie, attributes included.
    pub fn set_cookie_header(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub core: Arc<Core>,
    pub client: reqwest::Client,
    pub backend: Backend,
    secrets: Mutex<Vec<String>>,
    _db: Arc<TestDb>,
    config: Config,
    store: tokio::sync::OnceCell<brama::store::DynStore>,
}

impl TestApp {
    /// Starts brama on `backend`; `None` when that backend is skipped (PostgreSQL without a URL).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
        capture_logs();
        let db = TestDb::create(backend).await?;
        let mut config = test_config(&db);
        tweak(&mut config);
        Some(Self::start(backend, config, Arc::new(db)).await)
    }

    /// Starts brama on a database the test has already prepared.
    pub async fn spawn_on(db: TestDb, tweak: impl FnOnce(&mut Config)) -> TestApp {
        capture_logs();
        let backend = db.backend();
        let mut config = test_config(&db);
        tweak(&mut config);
        Self::start(backend, config, Arc::new(db)).await
    }

    async fn start(backend: Backend, config: Config, db: Arc<TestDb>) -> TestApp {
        let app = Application::build(config.clone())
            .await
            .expect("application builds");
        let addr: SocketAddr = ([127, 0, 0, 1], app.port()).into();
        let core = app.core();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestApp {
            addr,
            core,
            client,
            backend,
            secrets: Mutex::new(Vec::new()),
            _db: db,
            config,
            store: tokio::sync::OnceCell::new(),
        }
    }

    /// A second node on the same database, with this node's settings changed by `tweak`.
    pub async fn sibling(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = self.config.clone();
        tweak(&mut config);
        Self::start(self.backend, config, self._db.clone()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Remembers a value that must never appear in the log.
    pub fn secret(&self, value: &str) {
        if value.len() >= 8 {
            self.secrets.lock().unwrap().push(value.to_string());
        }
    }

    /// Sends a request with optional JSON body and extra headers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_str(v).expect("header value"));
        }
        if let Some(body) = &body {
            self.remember_secrets(body);
            req = req.json(body);
        }
        let response = req.send().await.expect("request sent");
        self.read(response).await
    }

    pub async fn read(&self, response: reqwest::Response) -> Resp {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.remember_secrets(&body);
        for cookie in headers.get_all(reqwest::header::SET_COOKIE) {
            if let Some(v) = cookie
                .to_str()
                .ok()
                .and_then(|c| c.split(';').next())
                .and_then(|kv| kv.split_once('='))
            {
                self.secret(v.1);
            }
        }
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    fn remember_secrets(&self, body: &Value) {
        for key in [
            "password",
            "currentPassword",
            "newPassword",
            "accessToken",
            "refreshToken",
            "sessionId",
            "access",
            "refresh",
            "token",
            "secret",
            "otpauthUri",
            "mfaToken",
            "recoveryCode",
        ] {
            if let Some(v) = body.get(key).and_then(Value::as_str) {
                self.secret(v);
            }
        }
        for code in body
            .get("recoveryCodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(code) = code.as_str() {
                self.secret(code);
            }
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request("POST", path, Some(body), &[]).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, None, headers).await
    }

    pub async fn register(&self, username: &str) -> Resp {
        self.post(
            "/api/auth/register",
            json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD }),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Resp {
        self.post(
            "/api/auth/login",
            json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Registers and logs in; returns the login body.
    pub async fn user(&self, username: &str) -> Value {
        let r = self.register(username).await;
        assert_eq!(r.status, 200, "register {username}: {}", r.text);
        let r = self.login(username, PASSWORD).await;
        assert_eq!(r.status, 200, "login {username}: {}", r.text);
        r.body
    }

    /// Creates an account with `role` in the default organization (as `brama user create`
    /// does) and logs it in; returns the login body.
    pub async fn user_with_role(&self, username: &str, role: brama::core::Role) -> Value {
        use brama::domain::{AccountEmail, Password, Username};
        let registration = brama::core::accounts::Registration {
            username: Username::parse(username).expect("username"),
            email: AccountEmail::parse(&format!("{username}@example.com")).expect("email"),
            password: Password::parse(PASSWORD, self.config.password_policy).expect("password"),
        };
        self.core
            .create_account(registration, role)
            .await
            .expect("account created");
        let r = self.login(username, PASSWORD).await;
        assert_eq!(r.status, 200, "login {username}: {}", r.text);
        r.body
    }

    /// The test's database, opened beside the server (as an operator's tool would): for
    /// fixtures no API makes, and for looking at what was stored.
    pub async fn store(&self) -> brama::store::DynStore {
        self.store
            .get_or_init(|| async {
                brama::store::connect(&self._db.url, self.config.database_timeout(), false)
                    .await
                    .expect("the test database opens")
            })
            .await
            .clone()
    }

    /// An admin of another organization, logged in; returns the login body.
    pub async fn foreign_admin(&self, username: &str) -> Value {
        let org = uuid::Uuid::now_v7().to_string();
        let now = brama::core::now_ms();
        let store = self.store().await;
        let mut tx = store.begin().await.expect("transaction");
        tx.insert_organization(&brama::store::OrganizationRecord {
            id: org.clone(),
            name: "Other NGO".into(),
            state: 1,
            status: brama::domain::OrganizationStatus::Active,
            created_at: now,
        })
        .await
        .expect("organization");
        let hash = self.core.hasher.hash(PASSWORD).await.expect("hash");
        let email = format!("{username}@other.example");
        tx.insert_account(&brama::store::NewAccount {
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: org,
            username: Some(username.into()),
            username_norm: Some(brama::domain::normalize_key(username)),
            email_norm: brama::domain::normalize_key(&email),
            email,
            phone: None,
            phone_norm: None,
            name: String::new(),
            surname: String::new(),
            password_hash: Some(hash),
            role: brama::domain::Role::Admin,
            status: brama::domain::AccountStatus::Active,
            now,
        })
        .await
        .expect("account");
        tx.commit().await.expect("commit");
        let r = self.login(username, PASSWORD).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    }

    /// Ends the session of `access` through the Membership API.
    pub async fn logout(&self, access: &str) {
        let r = self
            .request(
                "POST",
                "/api/auth/logout",
                None,
                &[("x-access-token", access)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    /// The ids of the Ed25519 keys `/.well-known/jwks.json` publishes (those of access tokens).
    pub async fn published_kids(&self) -> Vec<String> {
        self.published_kids_of("EdDSA").await
    }

    /// The ids of the keys of `alg` (`EdDSA`, `RS256`) `/.well-known/jwks.json` publishes.
    pub async fn published_kids_of(&self, alg: &str) -> Vec<String> {
        let jwks = self.get("/.well-known/jwks.json", &[]).await.body;
        jwks["keys"]
            .as_array()
            .expect("a key set")
            .iter()
            .filter(|k| k["alg"] == alg)
            .map(|k| k["kid"].as_str().expect("a kid").to_string())
            .collect()
    }

    /// Rotates a refresh token through the Membership API.
    pub async fn refresh(&self, token: &str) -> Resp {
        self.post("/api/auth/refreshtoken", json!({ "refreshToken": token }))
            .await
    }

    /// Runs one statement with text binds directly on the test's database (to age rows as
    /// time would).
    pub async fn execute_sql(&self, statement: &str, binds: &[&str]) {
        self._db.execute(statement, binds).await
    }

    /// A scratch directory of this test's own, removed with it.
    pub fn dir(&self) -> &PathBuf {
        self._db.dir()
    }

    /// The test's database, to connect to it directly.
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    /// The SQLite database file, for tests of the file itself.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self._db.url.strip_prefix("sqlite://").map(PathBuf::from)
    }

    /// The first column of the first row of a query with text binds, as text (`NULL` is `None`).
    pub async fn query_text(&self, statement: &str, binds: &[&str]) -> Option<String> {
        self._db.query_text(statement, binds).await
    }

    /// Moves a refresh token's expiry into the past.
    pub async fn expire_refresh_token(&self, token: &str) {
        let hash = brama::crypto::token_hash(token);
        self.execute_sql(
            "UPDATE refresh_tokens SET expires_at = 1 WHERE token_hash = $1",
            &[&hash],
        )
        .await;
    }

    /// A CSRF pair as the page gets it: (sessionId for the header, sessionToken cookie value).
    pub async fn csrf(&self) -> (String, String) {
        let r = self.get("/api/auth/csrf", &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id = r.body["sessionId"].as_str().expect("sessionId").to_string();
        let cookie = r.set_cookie("sessionToken").expect("sessionToken cookie");
        (id, cookie)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let secrets = self.secrets.lock().unwrap_or_else(|p| p.into_inner());
        if secrets.is_empty() {
            return;
        }
        // All the secrets in one pass over the log: the log is every test's lines at DEBUG, and
        // a search of it per secret took a test of 6 000 refreshes (12 000 secrets) over twenty
        // minutes when it ended after most of the others.
        let finder = aho_corasick::AhoCorasick::new(secrets.iter()).expect("secrets to look for");
        let log = capture_logs();
        let log = log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = finder.find(log.as_slice()) {
            let secret = &secrets[found.pattern().as_usize()];
            panic!(
                "a secret reached the log: {}…",
                &secret[..6.min(secret.len())]
            );
        }
    }
}

/// Runs each listed test once on SQLite and once on PostgreSQL. Each test is an
/// `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Starts an app or returns from the test when the backend is skipped.
#[macro_export]
macro_rules! app {
    ($backend:expr) => {
        match $crate::helpers::TestApp::spawn($backend).await {
            Some(app) => app,
            None => return,
        }
    };
    ($backend:expr, $tweak:expr) => {
        match $crate::helpers::TestApp::spawn_with($backend, $tweak).await {
            Some(app) => app,
            None => return,
        }
    };
}

/// Runs the futures at once (requests in flight together) and returns their outputs in order.
pub async fn all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, future) in done.iter_mut().zip(pending.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}

/// Waits until the outbox holds at least `n` emails (they are sent after the answer).
pub async fn outbox_with(app: &TestApp, n: usize) -> Vec<brama::store::OutboxRecord> {
    for _ in 0..200 {
        let emails = app.core.outbox().await.expect("outbox");
        if emails.len() >= n {
            return emails;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the outbox never held {n} emails");
}

/// The token of the first `{public_url}{path}#token=` link in an email body.
pub fn link_token(app: &TestApp, body: &str, path: &str) -> String {
    let prefix = format!("{}{path}#token=", app.core.config.public_url());
    let start = body
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {path} link in {body}"))
        + prefix.len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    app.secret(&token);
    token
}

/// A minimal SMTP server on a free local port that keeps every message it is given, so tests
/// can read what brama really sent over the wire. While told to [`SmtpSink::refuse`], it greets
/// every connection with `421` and hangs up, as a server that is down for maintenance does.
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<String>>>,
    refusing: Arc<std::sync::atomic::AtomicBool>,
    /// Connections refused so far.
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("sink binds");
        let port = listener.local_addr().expect("addr").port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let kept = messages.clone();
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (refusing_now, refused_count) = (refusing.clone(), refused.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                if refusing_now.load(std::sync::atomic::Ordering::SeqCst) {
                    refused_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mut stream = stream;
                    let _ = stream
                        .write_all(b"421 sink is down for maintenance\r\n")
                        .await;
                    continue;
                }
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let verb = line
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" | "HELO" => b"250 sink\r\n",
                            "DATA" => {
                                let _ = write.write_all(b"354 end with .\r\n").await;
                                let mut message = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    message.push_str(l.strip_prefix('.').unwrap_or(&l));
                                    message.push('\n');
                                }
                                kept.lock().unwrap().push(decode_mail(&message));
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        SmtpSink {
            port,
            messages,
            refusing,
            refused,
        }
    }

    /// From now on, refuse (or accept again) every connection.
    pub fn refuse(&self, refuse: bool) {
        self.refusing
            .store(refuse, std::sync::atomic::Ordering::SeqCst);
    }

    /// Connections refused so far.
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Messages received so far.
    pub fn received(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits for the n-th message (1-based) and returns all received so far.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..250 {
            let got = self.messages.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the SMTP sink never received {n} messages");
    }
}

/// The message with its body decoded from the transfer encoding lettre chose, so a test can
/// read the text a person would.
fn decode_mail(message: &str) -> String {
    use base64::Engine;
    let Some((head, body)) = message.split_once("\n\n") else {
        return message.to_string();
    };
    let lower = head.to_ascii_lowercase();
    let text = if lower.contains("content-transfer-encoding: quoted-printable") {
        let joined = body.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) if bytes[i] == b'=' => {
                    out.push(b);
                    i += 3;
                }
                _ => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    } else if lower.contains("content-transfer-encoding: base64") {
        let compact: String = body.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_string()
    };
    format!("{head}\n\n{text}")
}
