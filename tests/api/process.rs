//! The real `brama` binary as an operator runs it: killed with SIGKILL mid-write and restarted
//! (SPEC §9), configured by file, environment and flags (SPEC §8), and its `migrate`,
//! `user create`, `keys rotate` and `members import|export` commands, and a graceful SIGTERM.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::both_backends;
use crate::helpers::{Backend, PASSWORD, TestDb};

both_backends!(
    sigkill_loses_no_acknowledged_registration,
    rotated_key_signs_new_tokens_and_old_ones_still_verify,
    members_import_and_export_from_the_command_line,
    sigterm_answers_every_request_in_flight_then_exits_zero,
    a_revoked_key_is_refused_by_every_node_within_ten_seconds,
    serve_clears_an_upgrades_backlog_soon_after_start,
    a_killed_import_leaves_none_of_its_rows,
    outbox_shows_where_each_emails_delivery_stands,
    data_key_rotate_from_the_command_line,
    every_audited_read_is_written_even_when_the_node_stops_at_once,
);

const BIN: &str = env!("CARGO_BIN_EXE_brama");

/// How long a starting server may take to answer `/healthz` (a debug build migrating a fresh
/// database on a busy machine).
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A scratch directory that is removed afterwards (a SQLite `TestDb` is exactly that).
async fn scratch_dir() -> TestDb {
    TestDb::create(Backend::Sqlite)
        .await
        .expect("the SQLite backend is never skipped")
}

/// `brama` run in `cwd` (so no stray `./brama.toml` is read), without any `BRAMA_*` setting of
/// the caller's, with cheap argon2, and killed if the test drops it.
pub(crate) fn brama(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BRAMA_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd)
        .env("BRAMA_ARGON2_MEMORY_KIB", "256")
        .env("BRAMA_ARGON2_ITERATIONS", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// The environment of a server on `db`: its data dir, and its PostgreSQL database if it has one.
pub(crate) fn data_env(cmd: &mut Command, db: &TestDb, backend: Backend) {
    cmd.env("BRAMA_DATA_DIR", db.dir());
    if backend == Backend::Postgres {
        cmd.env("BRAMA_DATABASE_URL", &db.url);
    }
}

/// Runs a command that must finish on its own, with `stdin` as its input.
pub(crate) async fn run(mut cmd: Command, stdin: &str) -> Output {
    if !stdin.is_empty() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("brama starts");
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.as_bytes()).await.expect("stdin");
    }
    match tokio::time::timeout(START_DEADLINE, child.wait_with_output()).await {
        Ok(output) => output.expect("brama output"),
        // The child was dropped with the future, and kill_on_drop ended it.
        Err(_) => panic!("brama did not exit within {START_DEADLINE:?}"),
    }
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `word` occurs in `haystack` as a whole word (not inside a longer identifier).
fn names(haystack: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// A running `brama serve`; SIGKILLed when dropped.
pub(crate) struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts `cmd` (already given `serve` and its settings) with its output in `log`, and waits
    /// until it answers `/healthz` on `port`.
    async fn start(mut cmd: Command, port: u16, log: PathBuf) -> Server {
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdout(file.try_clone().expect("log file")).stderr(file);
        let child = cmd.spawn().expect("brama starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut server = Server {
            child,
            port,
            log,
            http,
        };
        server.wait_until_healthy().await;
        server
    }

    async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "brama exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = self.http.get(self.url("/healthz")).send().await {
                assert_eq!(r.status(), 200, "/healthz:\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "brama did not answer /healthz on port {} within {START_DEADLINE:?}:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as `kill -9` does; nothing gets to flush or shut down.
    async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POST as the holder of `access`.
    pub(crate) async fn post_as(&self, path: &str, body: Value, access: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("x-access-token", access)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str, access: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = access {
            request = request.header("x-access-token", token);
        }
        let r = request.send().await.expect("request sent");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, username: &str) -> (u16, Value) {
        self.post(
            "/api/auth/register",
            json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD }),
        )
        .await
    }

    /// Logs in and returns the login body.
    async fn login(&self, username: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/auth/login",
                json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}\n{}", self.log());
        body
    }

    /// The ids of the published keys of access tokens (Ed25519).
    async fn kids(&self) -> BTreeSet<String> {
        self.kids_of("EdDSA").await
    }

    async fn kids_of(&self, alg: &str) -> BTreeSet<String> {
        let (status, body) = self.get("/.well-known/jwks.json", None).await;
        assert_eq!(status, 200, "{body}");
        body["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter(|k| k["alg"] == alg)
            .map(|k| k["kid"].as_str().expect("kid").to_string())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Starts `brama serve` on `db` at a free port, with `extra` settings.
pub(crate) async fn serve(
    db: &TestDb,
    backend: Backend,
    extra: &[(&str, &str)],
    name: &str,
) -> Server {
    let port = free_port();
    let mut cmd = brama(db.dir());
    data_env(&mut cmd, db, backend);
    cmd.arg("serve")
        .env("BRAMA_LISTEN", format!("127.0.0.1:{port}"));
    for (key, value) in extra {
        cmd.env(key, value);
    }
    Server::start(cmd, port, db.dir().join(format!("{name}.log"))).await
}

fn kid(access_token: &Value) -> String {
    let token = access_token.as_str().expect("accessToken");
    jsonwebtoken::decode_header(token)
        .expect("JWT header")
        .kid
        .expect("kid")
}

async fn sigkill_loses_no_acknowledged_registration(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let limits = [("BRAMA_REGISTRATIONS_PER_IP_PER_HOUR", "100000")];
    let mut server = serve(&db, backend, &limits, "first").await;

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let url = server.url("/api/auth/register");
        let acknowledged = Arc::clone(&acknowledged);
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut unexpected = Vec::new();
            for n in 0.. {
                let username = format!("w{worker}n{n}");
                let sent = http
                    .post(&url)
                    .json(&json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD }))
                    .send()
                    .await;
                // After the kill every request fails to connect or loses its connection.
                let Ok(response) = sent else { break };
                match response.status().as_u16() {
                    200 => acknowledged.lock().unwrap().push(username),
                    other => unexpected.push(format!("{username}: {other}")),
                }
            }
            unexpected
        }));
    }
    // Kill mid-stream: after a second and at least 50 acknowledged, with 8 requests in flight.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let count = acknowledged.lock().unwrap().len();
        if count >= 50 && started.elapsed() >= Duration::from_secs(1) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {count} registrations acknowledged in 2 minutes:\n{}",
            server.log()
        );
    }
    server.kill().await;
    for worker in workers {
        let unexpected = worker.await.expect("worker");
        assert!(
            unexpected.is_empty(),
            "answers other than 200: {unexpected:?}"
        );
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 50, "{}", acknowledged.len());

    let server = serve(&db, backend, &limits, "restarted").await;
    let server = Arc::new(server);
    let queue = Arc::new(Mutex::new(acknowledged.clone()));
    let mut checkers = Vec::new();
    for _ in 0..8 {
        let (server, queue) = (Arc::clone(&server), Arc::clone(&queue));
        checkers.push(tokio::spawn(async move {
            let mut lost = Vec::new();
            loop {
                let Some(username) = queue.lock().unwrap().pop() else {
                    break;
                };
                let (status, body) = server
                    .post(
                        "/api/auth/login",
                        json!({ "username": username, "password": PASSWORD }),
                    )
                    .await;
                if status != 200 || body["username"] != username.as_str() {
                    lost.push(format!("{username}: {status} {body}"));
                }
            }
            lost
        }));
    }
    let mut lost = Vec::new();
    for checker in checkers {
        lost.extend(checker.await.expect("checker"));
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged accounts lost after SIGKILL: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
}

async fn rotated_key_signs_new_tokens_and_old_ones_still_verify(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    // Nodes behind one name share the issuer; by default each would derive it from its own
    // listen address.
    let shared = [("BRAMA_PUBLIC_URL", "http://auth.brama.test")];
    let first = serve(&db, backend, &shared, "first").await;
    for name in ["alice", "bob", "carol"] {
        assert_eq!(first.register(name).await.0, 200);
    }
    let token_a = first.login("alice").await["accessToken"].clone();
    let kid_a = kid(&token_a);
    assert_eq!(first.kids().await, BTreeSet::from([kid_a.clone()]));

    let mut rotate = brama(db.dir());
    data_env(&mut rotate, &db, backend);
    rotate.args(["keys", "rotate"]);
    let output = run(rotate, "").await;
    assert!(
        output.status.success(),
        "keys rotate: {}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("(RS256)"),
        "both kinds rotate: {}",
        text(&output.stdout)
    );

    let second = serve(&db, backend, &shared, "second").await;
    assert_eq!(
        second.kids_of("RS256").await.len(),
        2,
        "the RSA key rotated too"
    );
    let token_b = second.login("bob").await["accessToken"].clone();
    let kid_b = kid(&token_b);
    assert_ne!(kid_b, kid_a, "a new node signs with the rotated key");
    assert_eq!(
        second.kids().await,
        BTreeSet::from([kid_a.clone(), kid_b.clone()]),
        "the old public key stays published while its tokens live"
    );
    let (status, me) = second.get("/api/auth/me", token_a.as_str()).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (200, Some("alice")),
        "{me}"
    );

    // The node that was running meets the new kid and reloads instead of refusing it.
    let (status, me) = first.get("/api/auth/me", token_b.as_str()).await;
    assert_eq!(
        (status, me["username"].as_str()),
        (200, Some("bob")),
        "{me}"
    );
    assert_eq!(first.kids().await, BTreeSet::from([kid_a, kid_b.clone()]));
    assert_eq!(kid(&first.login("carol").await["accessToken"]), kid_b);
}

/// The access line and every other line logged while a request is served name the request
/// (its id, method and path, never its query string), in text and in JSON, in tracing's shapes
/// (issue 18 writes them without tracing's formatter and span).
#[tokio::test]
async fn log_lines_name_their_request_in_text_and_in_json() {
    for (format, filter) in [
        ("text", "info"),
        ("json", "info"),
        ("text", "info,brama::http::edge=warn"),
    ] {
        let db = scratch_dir().await;
        let settings = [("BRAMA_LOG_FORMAT", format), ("RUST_LOG", filter)];
        let server = serve(&db, Backend::Sqlite, &settings, format).await;
        let r = server
            .http
            .post(server.url("/api/auth/register"))
            .header("x-request-id", "log-register-1")
            .json(
                &json!({ "username": "alice", "email": "alice@example.com", "password": PASSWORD }),
            )
            .send()
            .await
            .expect("request sent");
        assert_eq!(r.status(), 200);
        let get = |path: &str, id: &str| {
            server
                .http
                .get(server.url(path))
                .header("x-request-id", id)
                .send()
        };
        let r = get("/healthz?token=query-secret", "log-healthz-1").await;
        assert_eq!(r.expect("request sent").status(), 200);
        // A warning is written at once, with every line gathered before it.
        let r = get("/company/nowhere", "log-warning-1").await;
        assert_eq!(r.expect("request sent").status(), 404);
        let deadline = Instant::now() + START_DEADLINE;
        let log = loop {
            let log = server.log();
            if log.contains("log-warning-1") {
                break log;
            }
            assert!(Instant::now() < deadline, "no warning:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(!log.contains("query-secret"), "{log}");
        let warning = log
            .lines()
            .find(|l| l.contains("log-warning-1"))
            .expect("the warning");
        assert!(warning.contains("WARN"), "{warning}");
        assert!(
            warning.contains("request{id=log-warning-1 method=GET path=/company/nowhere}: brama::http::company::error: company api error")
                || warning.contains(r#""span":{"id":"log-warning-1","method":"GET","path":"/company/nowhere","name":"request"}"#),
            "{warning}"
        );
        if filter != "info" {
            // The access line is filtered as a line of `brama::http::edge`; the rest stays.
            assert!(!log.contains("served"), "{log}");
            assert!(
                log.contains("request{id=log-register-1 method=POST path=/api/auth/register}: brama::core::accounts: account registered"),
                "{log}"
            );
            continue;
        }
        let line = |needle: &str| {
            log.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no line with {needle}:\n{log}"))
        };
        let is_timestamp = |t: &str| {
            let shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
            t.len() == shape.len()
                && t.bytes().zip(shape.bytes()).all(|(c, s)| {
                    if s == b'd' {
                        c.is_ascii_digit()
                    } else {
                        c == s
                    }
                })
        };
        if format == "text" {
            let served = line("log-healthz-1");
            let (time, rest) = served.split_at(27);
            assert!(is_timestamp(time), "{served}");
            assert!(
                rest.starts_with(
                    "  INFO request{id=log-healthz-1 method=GET path=/healthz}: \
                     brama::http::edge: served status=200 latency_ms="
                ),
                "{served}"
            );
            let registered = line("account registered");
            assert!(
                registered.contains(
                    " INFO request{id=log-register-1 method=POST path=/api/auth/register}: \
                     brama::core::accounts: account registered account="
                ),
                "{registered}"
            );
            let listening = line("brama listening");
            assert!(!listening.contains("request{"), "{listening}");
            assert!(
                listening.contains(" INFO brama::app: brama listening address=127.0.0.1:"),
                "{listening}"
            );
        } else {
            let lines: Vec<Value> = log
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            let find = |message: &str| {
                lines
                    .iter()
                    .find(|l| l["message"] == message)
                    .unwrap_or_else(|| panic!("no {message} line:\n{log}"))
            };
            let served = lines
                .iter()
                .find(|l| l["message"] == "served" && l["span"]["id"] == "log-healthz-1")
                .unwrap_or_else(|| panic!("no access line:\n{log}"));
            assert!(
                is_timestamp(served["timestamp"].as_str().unwrap_or("")),
                "{served}"
            );
            assert_eq!(served["level"], "INFO");
            assert_eq!(served["target"], "brama::http::edge");
            assert_eq!(served["status"], 200, "a number: {served}");
            assert!(served["latency_ms"].is_u64(), "{served}");
            let span = json!({ "id": "log-healthz-1", "method": "GET", "path": "/healthz", "name": "request" });
            assert_eq!(served["span"], span);
            assert_eq!(served["spans"], json!([span]));
            let registered = find("account registered");
            assert_eq!(registered["span"]["id"], "log-register-1");
            assert_eq!(registered["span"]["path"], "/api/auth/register");
            assert_eq!(registered["role"], "owner", "{registered}");
            let listening = find("brama listening");
            assert!(listening.get("span").is_none(), "{listening}");
            assert!(
                listening["address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("127.0.0.1:"))
            );
        }
    }
}

#[tokio::test]
async fn help_documents_every_command() {
    let dir = scratch_dir().await;
    let mut cmd = brama(dir.dir());
    cmd.arg("--help");
    let output = run(cmd, "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let help = text(&output.stdout);
    for command in [
        "serve", "migrate", "user", "keys", "data-key", "members", "outbox",
    ] {
        assert!(
            names(&help, command),
            "--help does not mention {command}:\n{help}"
        );
    }
}

/// A start-up that must fail, and the setting its message must name.
struct BadStart {
    setting: &'static str,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

#[tokio::test]
async fn bad_settings_stop_start_up_naming_the_setting() {
    let dir = scratch_dir().await;
    let typo = dir.dir().join("typo.toml");
    std::fs::write(&typo, "listne = \"127.0.0.1:9\"\n").expect("typo.toml");
    let typo = typo.to_str().expect("UTF-8 path").to_string();
    let missing = dir.dir().join("missing.toml");
    let missing = missing.to_str().expect("UTF-8 path").to_string();
    let bad = |setting, args: &[&str], env: &[(&str, &str)]| BadStart {
        setting,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let cases = [
        bad(
            "access_token_minutes",
            &[],
            &[("BRAMA_ACCESS_TOKEN_MINUTES", "30")],
        ),
        bad("listen", &[], &[("BRAMA_LISTEN", "nonsense")]),
        bad(
            "failed_logins_per_ip",
            &[],
            &[("BRAMA_FAILED_LOGINS_PER_IP", "abc")],
        ),
        bad(
            "password_policy",
            &[],
            &[("BRAMA_PASSWORD_POLICY", "weird")],
        ),
        bad("listne", &["--config", &typo], &[]),
        bad("config", &["--config", &missing], &[]),
        bad("config", &[], &[("BRAMA_CONFIG", &missing)]),
    ];
    for BadStart { setting, args, env } in cases {
        let mut cmd = brama(dir.dir());
        // Were the bad value accepted, the server would start here and the wait would time out.
        cmd.env("BRAMA_DATA_DIR", dir.dir().join("data"))
            .env("BRAMA_LISTEN", format!("127.0.0.1:{}", free_port()))
            .args(args)
            .arg("serve")
            .envs(env);
        let output = run(cmd, "").await;
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{setting}: started anyway");
        assert!(
            names(&stderr, setting),
            "{setting}: the message does not name it:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn flag_beats_environment_beats_file() {
    let dir = scratch_dir().await;
    let [a, b, c] = [free_port(), free_port(), free_port()];
    let file = dir.dir().join("brama.toml");
    std::fs::write(&file, format!("listen = \"127.0.0.1:{a}\"\n")).expect("brama.toml");
    let layers: [(&str, Option<u16>, Option<u16>, u16); 3] = [
        ("file, env and flag", Some(b), Some(c), c),
        ("file and env", Some(b), None, b),
        ("file alone", None, None, a),
    ];
    for (label, env, flag, expected) in layers {
        let mut cmd = brama(dir.dir());
        cmd.env("BRAMA_DATA_DIR", dir.dir().join("data"))
            .arg("--config")
            .arg(&file)
            .arg("serve");
        if let Some(port) = env {
            cmd.env("BRAMA_LISTEN", format!("127.0.0.1:{port}"));
        }
        if let Some(port) = flag {
            cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
        }
        let mut server = Server::start(cmd, expected, dir.dir().join("layers.log")).await;
        for other in [a, b, c].into_iter().filter(|p| *p != expected) {
            let url = format!("http://127.0.0.1:{other}/healthz");
            assert!(
                server.http.get(&url).send().await.is_err(),
                "{label}: something answers on {other}"
            );
        }
        server.kill().await;
    }
}

#[tokio::test]
async fn migrate_and_user_create_prepare_a_data_dir() {
    let dir = scratch_dir().await;
    let data = dir.dir().join("data");
    let command = |args: &[&str]| {
        let mut cmd = brama(dir.dir());
        cmd.env("BRAMA_DATA_DIR", &data).args(args);
        cmd
    };

    let output = run(command(&["migrate"]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(data.join("brama.db").is_file(), "migrate creates brama.db");

    let create = |name: &str, role: &str| {
        command(&[
            "user",
            "create",
            "--username",
            name,
            "--email",
            &format!("{name}@example.com"),
            "--role",
            role,
        ])
    };
    let output = run(create("admin1", "admin"), &format!("{PASSWORD}\n")).await;
    assert!(output.status.success(), "{}", text(&output.stderr));

    let output = run(create("weak1", "user"), "weak\n").await;
    assert!(!output.status.success(), "a weak password is refused");
    assert!(
        names(&text(&output.stderr), "password"),
        "{}",
        text(&output.stderr)
    );

    let output = run(create("emperor1", "emperor"), &format!("{PASSWORD}\n")).await;
    assert!(!output.status.success(), "an unknown role is refused");
    let stderr = text(&output.stderr);
    assert!(
        names(&stderr, "emperor") && names(&stderr, "role"),
        "{stderr}"
    );

    let taken = command(&[
        "user",
        "create",
        "--username",
        "ADMIN1",
        "--email",
        "other@example.com",
    ]);
    let output = run(taken, &format!("{PASSWORD}\n")).await;
    assert!(!output.status.success(), "a taken username is refused");
    let stderr = text(&output.stderr);
    assert!(names(&stderr, "username"), "{stderr}");

    let port = free_port();
    let mut cmd = command(&["serve"]);
    cmd.env("BRAMA_LISTEN", format!("127.0.0.1:{port}"));
    let server = Server::start(cmd, port, dir.dir().join("serve.log")).await;
    let login = server.login("admin1").await;
    assert_eq!(login["roles"], json!(["ROLE_ADMIN"]));
    assert_eq!(login["username"], "admin1");
    assert_eq!(login["email"], "admin1@example.com");
    for refused in ["weak1", "emperor1"] {
        let (status, body) = server
            .post(
                "/api/auth/login",
                json!({ "username": refused, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{refused} was not created"
        );
    }
}

async fn members_import_and_export_from_the_command_line(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let command = |args: &[&str]| {
        let mut cmd = brama(db.dir());
        data_env(&mut cmd, &db, backend);
        cmd.args(args);
        cmd
    };
    let pesel = |n: u32| {
        brama::domain::Pesel::from_parts(
            1960 + (n % 40) as i32,
            1 + (n % 12) as u8,
            1 + (n % 28) as u8,
            n as u16,
        )
        .expect("valid")
        .as_str()
        .to_string()
    };
    let header = "imie,nazwisko,wyksztalcenie,pesel,wojewodztwo,miejscowosc,ulica,nrdomulokalu,kodpocztowy,email,tel\n";
    let mut file = String::from(header);
    for n in 0..2_000u32 {
        let email = if n == 1_500 {
            "broken".to_string()
        } else {
            format!("m{n}@example.com")
        };
        file.push_str(&format!(
            "Ewa,Nowak{n},Wyższe,{},Lubelskie,Lublin,Krótka,{n},20-001,{email},+48 600 100 200\n",
            pesel(n)
        ));
    }
    let input = db.dir().join("members.csv");
    std::fs::write(&input, &file).unwrap();

    // One bad row: nothing is imported, and the line and field are named.
    let output = run(command(&["members", "import", input.to_str().unwrap()]), "").await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("line 1502: email: has the wrong format"),
        "{stderr}"
    );

    std::fs::write(&input, file.replace(",broken,", ",fixed@example.com,")).unwrap();
    let output = run(command(&["members", "import", input.to_str().unwrap()]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("imported 2000 members"),
        "{}",
        text(&output.stdout)
    );

    let exported = db.dir().join("export.csv");
    let output = run(
        command(&["members", "export", exported.to_str().unwrap()]),
        "",
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let csv = std::fs::read_to_string(&exported).unwrap();
    assert!(csv.starts_with("\u{feff}_id;imie;nazwisko;"), "BOM and ';'");
    assert_eq!(csv.lines().count(), 2_001);
    assert!(csv.contains(&format!(";{};", pesel(1_999))));
    assert!(
        csv.contains(";'+48 600 100 200;"),
        "formula-looking phone neutralised"
    );

    let output = run(
        command(&[
            "members",
            "export",
            exported.to_str().unwrap(),
            "--sep",
            "x",
        ]),
        "",
    )
    .await;
    assert!(!output.status.success() && names(&text(&output.stderr), "sep"));
}

async fn sigterm_answers_every_request_in_flight_then_exits_zero(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    // Costly hashes and one hashing thread keep the logins in flight for a while. Attempts in
    // flight count against the account's failed-login budget until they succeed, so the budget
    // is raised above the twelve sent at once.
    let heavy = [
        ("BRAMA_ARGON2_MEMORY_KIB", "32768"),
        ("BRAMA_ARGON2_ITERATIONS", "3"),
        ("BRAMA_HASH_WORKERS", "1"),
        ("BRAMA_FAILED_LOGINS_PER_ACCOUNT", "100"),
    ];
    let mut server = serve(&db, backend, &heavy, "sigterm").await;
    assert_eq!(server.register("alice").await.0, 200);
    let server_url = server.url("/api/auth/login");
    let client = reqwest::Client::new();
    let logins: Vec<_> = (0..12)
        .map(|_| {
            let (client, url) = (client.clone(), server_url.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({ "username": "alice", "password": PASSWORD }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let pid = server.child.id().expect("running") as i32;
    // SAFETY: kill(2) with a pid we started and a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut answered = 0;
    for login in logins {
        match login.await.unwrap() {
            Ok(status) => {
                assert!(status == 200 || status == 503, "{status}");
                answered += 1;
            }
            Err(e) => panic!("a request in flight was dropped: {e}\n{}", server.log()),
        }
    }
    assert_eq!(answered, 12);
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    // And it no longer listens.
    assert!(client.get(server.url("/healthz")).send().await.is_err());
}

/// `brama keys revoke KID` while two nodes serve: both refuse the key's tokens within 10 s,
/// and sign new ones with the key that replaced it.
async fn a_revoked_key_is_refused_by_every_node_within_ten_seconds(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let shared = [("BRAMA_PUBLIC_URL", "http://auth.brama.test")];
    let first = serve(&db, backend, &shared, "first").await;
    let second = serve(&db, backend, &shared, "second").await;
    assert_eq!(first.register("alice").await.0, 200);
    let token = first.login("alice").await["accessToken"].clone();
    let leaked = kid(&token);
    let access = token.as_str().expect("token");
    for node in [&first, &second] {
        assert_eq!(node.get("/api/auth/me", Some(access)).await.0, 200);
    }
    let mut revoke = brama(db.dir());
    data_env(&mut revoke, &db, backend);
    revoke.args(["keys", "revoke", &leaked]);
    let output = run(revoke, "").await;
    assert!(
        output.status.success(),
        "keys revoke: {}",
        text(&output.stderr)
    );
    assert!(text(&output.stdout).contains(&format!("removed signing key {leaked}")));
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in [&first, &second] {
        loop {
            let (status, _) = node.get("/api/auth/me", Some(access)).await;
            if status == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the revoked key still works after 10 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let fresh = second.login("alice").await["accessToken"].clone();
    assert_ne!(kid(&fresh), leaked);
    assert_eq!(first.get("/api/auth/me", fresh.as_str()).await.0, 200);
}

/// A standard error that takes nothing (a pipe whose reader hangs) holds up no request: the
/// access lines of 3 000 requests (~450 KB) are many times what the pipe holds, and each
/// request is still answered, and SIGTERM still ends the server. Before, a request wrote the
/// gathered lines itself and stopped once the pipe was full, and so did every request after
/// it; and the last flush at exit waited for the pipe for ever.
#[tokio::test]
async fn a_standard_error_that_takes_nothing_holds_up_no_request() {
    let db = scratch_dir().await;
    let port = free_port();
    let mut cmd = brama(db.dir());
    data_env(&mut cmd, &db, Backend::Sqlite);
    cmd.arg("serve")
        .env("BRAMA_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("brama starts");
    // Held open and never read: writes into it block once it is full.
    let _unread = child.stderr.take().expect("stderr");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + START_DEADLINE;
    while http.get(&url).send().await.is_err() {
        assert!(Instant::now() < deadline, "brama did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..3000 {
        let status = http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} was not answered: {e}"))
            .status();
        assert_eq!(status, 200, "request {i}");
    }
    // Stopping does not wait for it for ever either: the last lines are given two seconds.
    let pid = i32::try_from(child.id().expect("running")).expect("pid");
    // SAFETY: kill(2) with a pid we started and a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("brama did not exit within 30 s of SIGTERM")
        .expect("exit status");
    assert!(status.success(), "{status}");
}

/// The data directory holds keys, password hashes and PESELs: brama makes it 0700 and the
/// database's files 0600 even under a permissive umask, and warns about an existing directory
/// that others may read.
#[tokio::test]
async fn the_data_directory_and_database_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir().await;
    let data = dir.dir().join("data");
    let mut migrate = brama(dir.dir());
    migrate.env("BRAMA_DATA_DIR", &data).arg("migrate");
    // SAFETY: umask only sets the child's file-creation mask before it runs brama.
    unsafe {
        migrate.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    let output = run(migrate, "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700, "data directory");
    for name in ["brama.db", "brama.db-wal", "brama.db-shm"] {
        let file = data.join(name);
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{name}");
        }
    }
    assert!(data.join("brama.db").exists());

    // An operator's own directory is left as it is, but named in the log.
    let open = dir.dir().join("open");
    std::fs::create_dir(&open).expect("dir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let port = free_port();
    let mut cmd = brama(dir.dir());
    cmd.env("BRAMA_DATA_DIR", &open)
        .env("BRAMA_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve");
    let server = Server::start(cmd, port, dir.dir().join("open.log")).await;
    assert_eq!(mode(&open), 0o755);
    assert_eq!(mode(&open.join("brama.db")), 0o600);
    assert!(
        server.log().contains("may be read by other users"),
        "{}",
        server.log()
    );
}

/// The janitor runs in `brama serve` by itself: rows that an older version left behind (an
/// audit event past its retention, an outbox email whose link has expired) go within seconds
/// of start-up, and the log says how many.
async fn serve_clears_an_upgrades_backlog_soon_after_start(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut migrate = brama(db.dir());
    data_env(&mut migrate, &db, backend);
    migrate.arg("migrate");
    let output = run(migrate, "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    db.execute(
        "INSERT INTO audit_events (id, action, created_at) VALUES ($1, 'account.login', 1000)",
        &["backlog-event"],
    )
    .await;
    db.execute(
        "INSERT INTO outbox (id, recipient, subject, body, created_at, expires_at) \
         VALUES ($1, 'a@example.com', 'Reset', 'a dead link', 1000, 2000)",
        &["backlog-email"],
    )
    .await;
    let count = "SELECT CAST((SELECT COUNT(*) FROM audit_events WHERE id = $1) \
                 + (SELECT COUNT(*) FROM outbox WHERE id = 'backlog-email') AS TEXT)";
    assert_eq!(
        db.query_text(count, &["backlog-event"]).await.as_deref(),
        Some("2")
    );
    let server = serve(&db, backend, &[("RUST_LOG", "info")], "janitor").await;
    let deadline = Instant::now() + START_DEADLINE;
    while db.query_text(count, &["backlog-event"]).await.as_deref() != Some("0") {
        assert!(
            Instant::now() < deadline,
            "the janitor did not run within {START_DEADLINE:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + START_DEADLINE;
    while !server.log().contains("janitor deleted") {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("janitor deleted"))
        .expect("the line");
    assert!(
        line.contains("outbox=1") && line.contains("audit_events=1"),
        "{line}"
    );

    // Every request has its access line, with the request's id (the client's own here), and a
    // log that goes to a file has no terminal colours in it. Lines are gathered and written
    // together (issue 18), at the latest 100 ms after they were logged.
    let r = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-janitor-1")
        .send()
        .await
        .expect("request sent");
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + START_DEADLINE;
    let served = loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| l.contains("trace-janitor-1")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no access line:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        served.contains("served")
            && served.contains("status=200")
            && served.contains("path=/healthz"),
        "{served}"
    );
    assert!(
        !server.log().contains('\u{1b}'),
        "no ANSI escapes in a log file"
    );

    // A node that stops gives the lease up, so that the node started after it (under a new
    // name) need not wait 15 minutes for it to run out.
    let mut server = server;
    let pid = server.child.id().expect("running") as i32;
    // SAFETY: kill(2) with a pid we started and a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let held = "SELECT CAST(held_until AS TEXT) FROM leases WHERE name = $1";
    assert_eq!(
        db.query_text(held, &["janitor"]).await.as_deref(),
        Some("0")
    );
    db.execute(
        "INSERT INTO audit_events (id, action, created_at) VALUES ($1, 'account.login', 1000)",
        &["backlog-event"],
    )
    .await;
    let server = serve(&db, backend, &[("RUST_LOG", "info")], "janitor-again").await;
    let deadline = Instant::now() + START_DEADLINE;
    while db.query_text(count, &["backlog-event"]).await.as_deref() != Some("0") {
        assert!(
            Instant::now() < deadline,
            "the restarted node's janitor did not run:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGKILL in the middle of `brama members import`, once its transaction has written (SQLite:
/// the WAL has grown; PostgreSQL: the import's transaction has an id): none of its rows stay.
async fn a_killed_import_leaves_none_of_its_rows(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let header = "imie,nazwisko,wyksztalcenie,pesel,wojewodztwo,miejscowosc,ulica,nrdomulokalu,kodpocztowy,email,tel\n";
    let mut file = String::from(header);
    for n in 0..60_000u32 {
        let pesel = brama::domain::Pesel::from_parts(
            1940 + (n % 60) as i32,
            1 + (n % 12) as u8,
            1 + (n % 28) as u8,
            // (year, month, day) repeats every 420 rows; the serial tells those apart.
            (n / 420) as u16,
        )
        .expect("valid");
        file.push_str(&format!(
            "Ewa,Nowak{n},Wyższe,{},Lubelskie,Lublin,Krótka,{n},20-001,m{n}@example.com,600100200\n",
            pesel.as_str()
        ));
    }
    let input = db.dir().join("members.csv");
    std::fs::write(&input, &file).unwrap();
    let mut migrate = brama(db.dir());
    data_env(&mut migrate, &db, backend);
    migrate.arg("migrate");
    let output = run(migrate, "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let wal = db.dir().join("brama.db-wal");
    let wal_before = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);

    let mut import = brama(db.dir());
    data_env(&mut import, &db, backend);
    let mut child = import
        .args(["members", "import", input.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("import started");
    let writing = "SELECT CAST(COUNT(*) AS TEXT) FROM pg_stat_activity WHERE datname = current_database() \
                   AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()";
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let written = match backend {
            Backend::Sqlite => {
                std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > wal_before + (1 << 20)
            }
            Backend::Postgres => db.query_text(writing, &[]).await.as_deref() != Some("0"),
        };
        if written {
            break;
        }
        if let Some(status) = child.try_wait().expect("import status") {
            panic!("the import ended ({status}) before it was seen writing: make the file larger");
        }
        assert!(
            Instant::now() < deadline,
            "the import never started writing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.expect("reaped");
    assert!(!status.success(), "the import was killed, not finished");

    let count = "SELECT CAST(COUNT(*) AS TEXT) FROM members";
    assert_eq!(db.query_text(count, &[]).await.as_deref(), Some("0"));
    // The file can be imported again, whole.
    let mut again = brama(db.dir());
    data_env(&mut again, &db, backend);
    again.args(["members", "import", input.to_str().unwrap()]);
    let output = run(again, "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(db.query_text(count, &[]).await.as_deref(), Some("60000"));
}

/// `brama outbox` shows each email's delivery: here, an SMTP server that refuses every
/// connection, so the email stays queued with its attempts and the server's answer.
async fn outbox_shows_where_each_emails_delivery_stands(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let sink = crate::helpers::SmtpSink::start().await;
    sink.refuse(true);
    let smtp_port = sink.port.to_string();
    let smtp = [
        ("BRAMA_SMTP_HOST", "127.0.0.1"),
        ("BRAMA_SMTP_PORT", smtp_port.as_str()),
        ("BRAMA_SMTP_SECURITY", "none"),
    ];
    let server = serve(&db, backend, &smtp, "outbox").await;
    let r = server
        .http
        .post(server.url("/company/signup"))
        .json(&json!({ "email": "owner@firma.pl", "phone": "+48600100200", "state": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let outbox = |json: bool| {
        let mut cmd = brama(db.dir());
        data_env(&mut cmd, &db, backend);
        cmd.arg("outbox");
        if json {
            cmd.arg("--json");
        }
        cmd
    };
    let mut listed = Value::Null;
    for _ in 0..100 {
        let output = run(outbox(true), "").await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        listed = serde_json::from_slice(&output.stdout).expect("a JSON array");
        if listed[0]["attempts"].as_i64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let email = &listed[0];
    assert_eq!(email["to"], "owner@firma.pl");
    assert_eq!(email["state"], "retrying", "{listed}");
    assert!(email["attempts"].as_i64() >= Some(1), "{listed}");
    assert!(
        email["last_error"].as_str().unwrap_or("").contains("421"),
        "{listed}"
    );
    assert!(email["next_attempt_at"].is_string(), "{listed}");
    assert!(email["expires_at"].is_string(), "{listed}");
    assert!(email["body"].as_str().unwrap().contains("/activate#token="));
    let output = run(outbox(false), "").await;
    let shown = text(&output.stdout);
    assert!(
        shown.contains("to owner@firma.pl: ")
            && shown.contains("attempts failed (last: ")
            && shown.contains("next at "),
        "{shown}"
    );
    drop(server);
}

/// `brama data-key rotate`: a new key, every PESEL re-encrypted under it, the old key gone from
/// the file, and the register still whole.
async fn data_key_rotate_from_the_command_line(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let command = |args: &[&str]| {
        let mut cmd = brama(db.dir());
        data_env(&mut cmd, &db, backend);
        cmd.args(args);
        cmd
    };
    let header = "imie,nazwisko,wyksztalcenie,pesel,wojewodztwo,miejscowosc,ulica,nrdomulokalu,kodpocztowy,email,tel\n";
    let input = db.dir().join("members.csv");
    std::fs::write(
        &input,
        format!("{header}Ewa,Nowak,Wyższe,02070803628,Lubelskie,Lublin,Krótka,1,20-001,e@example.com,600100200\n"),
    )
    .unwrap();
    let output = run(command(&["members", "import", input.to_str().unwrap()]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let key_file = db.dir().join("data.key");
    let before = std::fs::read_to_string(&key_file).expect("a key file");

    let output = run(command(&["data-key", "rotate"]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(
        said.contains("new data key ") && said.contains("re-encrypted 1 PESELs"),
        "{said}"
    );
    assert!(said.contains("removed data key "), "{said}");
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after);
    assert_eq!(after.lines().filter(|l| l.starts_with("key ")).count(), 1);

    let out = db.dir().join("out.csv");
    let output = run(command(&["members", "export", out.to_str().unwrap()]), "").await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("02070803628")
    );
}

/// Reads of a whole member are audited behind their answers, in batches: 300 reads at once all
/// reach the trail, and a node stopped (SIGTERM) right after answering them writes them out
/// before it exits.
async fn every_audited_read_is_written_even_when_the_node_stops_at_once(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut server = serve(&db, backend, &[], "audit-queue").await;
    assert_eq!(server.register("owner1").await.0, 200);
    let (_, login) = server
        .post(
            "/api/auth/login",
            json!({ "username": "owner1", "password": PASSWORD }),
        )
        .await;
    let token = login["accessToken"].as_str().unwrap().to_string();
    let pesel = brama::domain::Pesel::from_parts(1990, 1, 2, 345).unwrap();
    let (status, member) = server
        .post_as(
            "/api/membership/members",
            json!({
                "imie": "Anna", "nazwisko": "Nowak", "wyksztalcenie": "Wyższe",
                "pesel": pesel.as_str(), "wojewodztwo": "mazowieckie", "miejscowosc": "Warszawa",
                "ulica": "Prosta", "nrdomulokalu": "1", "kodpocztowy": "00-950",
                "email": "anna@example.com", "tel": "600100200",
            }),
            &token,
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let url = server.url(&format!(
        "/api/membership/members/{}",
        member["_id"].as_str().unwrap()
    ));
    let client = reqwest::Client::new();
    let reads: Vec<_> = (0..300)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                client
                    .get(url)
                    .header("x-access-token", token)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap().expect("answered"), 200);
    }
    let pid = server.child.id().expect("running") as i32;
    // SAFETY: kill(2) with a pid we started and a valid signal number has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let count = "SELECT CAST(COUNT(*) AS TEXT) FROM audit_events WHERE action = $1";
    assert_eq!(
        db.query_text(count, &["member.pesel_read"])
            .await
            .as_deref(),
        Some("300"),
        "{}",
        server.log()
    );
}
