//! Settings: defaults, then `brama.toml`, then `BRAMA_*` environment variables, then flags.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::domain::PasswordPolicy;

/// Every setting brama reads. Field names are the `brama.toml` keys; the environment variable is
/// the same name upper-cased with a `BRAMA_` prefix (`failed_logins_per_ip` ->
/// `BRAMA_FAILED_LOGINS_PER_IP`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port the HTTP server binds.
    pub listen: String,
    /// Directory for the SQLite file.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; empty means `brama.db` inside `data_dir`.
    pub database_url: Option<String>,
    /// The data key file that encrypts members' PESELs (SPEC §12); empty means `data.key` inside
    /// `data_dir`. Made (0600) at first start; every node of one database needs the same file.
    pub data_key_file: Option<PathBuf>,
    /// Redis for rate limits shared by several nodes; in memory without it.
    pub redis_url: Option<String>,
    /// Prefix of brama's keys in Redis, so several deployments can share one server.
    pub redis_key_prefix: String,
    /// Where people reach brama; used in email links, and `https` turns on Secure cookies + HSTS.
    /// Empty means `http://{listen}`.
    pub public_url: Option<String>,
    /// `iss` claim of access tokens; empty means the public URL.
    pub issuer: Option<String>,
    /// `aud` claim of access tokens.
    pub audience: String,
    /// Access-token lifetime, 5 to 15 minutes (seed 002).
    pub access_token_minutes: u32,
    /// Refresh-token (and session) lifetime in days.
    pub refresh_token_days: u32,
    /// Seconds after a rotation during which a repeat of the old refresh token is answered
    /// `refresh_token_rotated` instead of revoking the session.
    pub refresh_reuse_grace: u64,
    /// Live sessions one account may hold; a new login above it revokes the oldest.
    pub max_sessions_per_account: u32,
    /// Check the session on every access-token request (cached at most 1 s).
    pub strict_revocation: bool,
    /// Make the first account registered in the default organization its owner.
    pub bootstrap_first_user: bool,
    /// `seed` (seed 002's composition rule) or `nist` (length over composition).
    pub password_policy: PasswordPolicy,
    /// argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id iterations (OWASP: 2).
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Threads hashing passwords; 0 means one per core.
    pub hash_workers: usize,
    /// Hash jobs that may wait for a thread; beyond it the answer is 503 + Retry-After.
    pub hash_queue: usize,
    /// Failed logins allowed per account within `failed_login_window_secs`.
    pub failed_logins_per_account: u32,
    /// Failed logins allowed per client IP within `failed_login_window_secs`.
    pub failed_logins_per_ip: u32,
    /// Window of the failed-login limits, in seconds (15 minutes).
    pub failed_login_window_secs: u64,
    /// Registrations (and company signups) per client IP per hour.
    pub registrations_per_ip_per_hour: u32,
    /// Password-reset requests per client IP, and per address, per hour.
    pub password_resets_per_hour: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Per-address limits count an IPv6 client by this many leading bits of its address (a /64
    /// is one customer's network).
    pub ipv6_prefix_len: u8,
    /// Origins allowed by CORS; empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Roles that must have a second factor (SPEC §13), e.g. `["moderator", "admin", "owner"]`:
    /// their sessions opened with a password alone are for setting one up only.
    pub mfa_required_roles: Vec<String>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Members returned by the list without `page`/`limit`.
    pub members_max_unpaged: u32,
    /// How member lists show PESELs: `masked` (`*******1359`, the default) or `full`. One
    /// member read alone shows it whole, and is audited (SPEC §12).
    pub member_list_pesel: MemberListPesel,
    /// Days audit events are kept; the janitor deletes older ones.
    pub audit_retention_days: u32,
    /// Seconds a request waits for a connection to PostgreSQL before it answers 503
    /// `database_unavailable` (fractions allowed).
    pub database_timeout: f64,
    /// SMTP server for outgoing email; without it every email goes to the outbox table.
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587 for starttls, 465 for tls, 25 for none].
    pub smtp_port: Option<u16>,
    /// `starttls`, `tls` (implicit TLS) or `none` (plain text; for a relay on localhost only).
    pub smtp_security: SmtpSecurity,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
    /// Sender of brama's emails [default: brama <noreply@HOST of public_url>].
    pub smtp_from: Option<String>,
}

/// `member_list_pesel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MemberListPesel {
    #[default]
    Masked,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

/// A setting that must never be printed: `Debug` shows `***`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            data_key_file: None,
            redis_url: None,
            redis_key_prefix: "brama:".into(),
            public_url: None,
            issuer: None,
            audience: "brama".into(),
            access_token_minutes: 10,
            refresh_token_days: 30,
            refresh_reuse_grace: 0,
            max_sessions_per_account: 1,
            strict_revocation: false,
            bootstrap_first_user: true,
            password_policy: PasswordPolicy::Seed,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_workers: 0,
            hash_queue: 64,
            failed_logins_per_account: 10,
            failed_logins_per_ip: 100,
            failed_login_window_secs: 15 * 60,
            registrations_per_ip_per_hour: 20,
            password_resets_per_hour: 5,
            trusted_proxies: Vec::new(),
            audit_retention_days: 365,
            database_timeout: 2.0,
            ipv6_prefix_len: 64,
            cors_origins: Vec::new(),
            mfa_required_roles: Vec::new(),
            log_format: LogFormat::Text,
            members_max_unpaged: 10_000,
            member_list_pesel: MemberListPesel::Masked,
            smtp_host: None,
            smtp_port: None,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
        }
    }
}

/// The settings that also have a command-line flag. `None` leaves the lower layers alone.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Path of brama.toml [default: ./brama.toml if it exists]
    #[arg(long, global = true, env = "BRAMA_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Directory for the SQLite database [default: ./data]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://... or postgres://... [default: SQLite in the data dir]
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// redis://... for rate limits shared between nodes
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// URL people use to reach brama (email links; https turns on Secure cookies and HSTS)
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// A setting that stops start-up, with the name of the setting in the message.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {reason}")]
pub struct ConfigError {
    pub setting: String,
    pub reason: String,
}

impl ConfigError {
    fn new(setting: &str, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Reads every layer. The file is `--config`/`BRAMA_CONFIG`, or `./brama.toml` if present.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let explicit = overrides.config.clone();
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from("brama.toml"));
        if explicit.is_some() && !path.is_file() {
            return Err(ConfigError::new(
                "config",
                format!("file {} not found", path.display()),
            ));
        }
        let known = known_keys();
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(&path))
            .merge(
                Env::prefixed("BRAMA_")
                    .filter(move |key| known.iter().any(|k| key.as_str().eq_ignore_ascii_case(k))),
            )
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| {
            let setting = e.path.last().cloned().unwrap_or_else(|| "config".into());
            let mut reason = e.kind.to_string();
            if let Some(meta) = &e.metadata {
                reason.push_str(&format!(" (from {})", meta.name));
            }
            ConfigError::new(&setting, reason)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The data key file, defaulting to `data.key` in the data dir.
    pub fn data_key_file(&self) -> PathBuf {
        match &self.data_key_file {
            Some(path) if !path.as_os_str().is_empty() => path.clone(),
            _ => self.data_dir.join("data.key"),
        }
    }

    /// `database_timeout` as a duration.
    pub fn database_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.database_timeout)
    }

    /// Checks what types alone cannot say.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        if !(5..=15).contains(&self.access_token_minutes) {
            return Err(ConfigError::new(
                "access_token_minutes",
                "must be between 5 and 15",
            ));
        }
        if !(1..=365).contains(&self.refresh_token_days) {
            return Err(ConfigError::new(
                "refresh_token_days",
                "must be between 1 and 365",
            ));
        }
        if self.max_sessions_per_account == 0 {
            return Err(ConfigError::new(
                "max_sessions_per_account",
                "must be at least 1",
            ));
        }
        if self.argon2_memory_kib < 8 * self.argon2_parallelism.max(1) {
            return Err(ConfigError::new(
                "argon2_memory_kib",
                "must be at least 8 KiB per lane",
            ));
        }
        if self.argon2_iterations == 0 {
            return Err(ConfigError::new("argon2_iterations", "must be at least 1"));
        }
        if self.argon2_parallelism == 0 {
            return Err(ConfigError::new("argon2_parallelism", "must be at least 1"));
        }
        if self.hash_queue == 0 {
            return Err(ConfigError::new("hash_queue", "must be at least 1"));
        }
        if self.members_max_unpaged == 0 {
            return Err(ConfigError::new(
                "members_max_unpaged",
                "must be at least 1",
            ));
        }
        if !(1..=36500).contains(&self.audit_retention_days) {
            return Err(ConfigError::new(
                "audit_retention_days",
                "must be between 1 and 36500",
            ));
        }
        if !(0.1..=60.0).contains(&self.database_timeout) {
            return Err(ConfigError::new(
                "database_timeout",
                "must be between 0.1 and 60 seconds",
            ));
        }
        if !(1..=128).contains(&self.ipv6_prefix_len) {
            return Err(ConfigError::new(
                "ipv6_prefix_len",
                "must be between 1 and 128",
            ));
        }
        if self.failed_login_window_secs == 0 {
            return Err(ConfigError::new(
                "failed_login_window_secs",
                "must be at least 1",
            ));
        }
        let public = self.public_url();
        let parsed = url::Url::parse(&public)
            .map_err(|e| ConfigError::new("public_url", format!("{public:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(ConfigError::new(
                "public_url",
                "must be an http:// or https:// URL",
            ));
        }
        match self.database_url.as_deref() {
            None | Some("") => {}
            Some(u)
                if u.starts_with("sqlite:")
                    || u.starts_with("postgres://")
                    || u.starts_with("postgresql://") => {}
            Some(_) => {
                return Err(ConfigError::new(
                    "database_url",
                    "must start with sqlite:, postgres:// or postgresql://",
                ));
            }
        }
        if let Some(url) = self.redis_url.as_deref().filter(|u| !u.is_empty())
            && !url.starts_with("redis://")
        {
            // brama is built without TLS for Redis: keep Redis on a private network.
            return Err(ConfigError::new(
                "redis_url",
                "must start with redis:// (rediss:// is not supported)",
            ));
        }
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            return Err(ConfigError::new(
                "smtp_password",
                "smtp_username and smtp_password go together",
            ));
        }
        if let Some(from) = &self.smtp_from {
            from.parse::<lettre::message::Mailbox>().map_err(|e| {
                ConfigError::new("smtp_from", format!("{from:?} is not a mailbox: {e}"))
            })?;
        }
        for origin in &self.cors_origins {
            url::Url::parse(origin)
                .map_err(|e| ConfigError::new("cors_origins", format!("{origin:?}: {e}")))?;
        }
        for role in &self.mfa_required_roles {
            if crate::domain::Role::parse(role).is_none() {
                return Err(ConfigError::new(
                    "mfa_required_roles",
                    format!("{role:?} is not user, moderator, admin or owner"),
                ));
            }
        }
        Ok(())
    }

    /// Whether accounts of `role` must have a second factor (`mfa_required_roles`).
    pub fn mfa_required(&self, role: crate::domain::Role) -> bool {
        self.mfa_required_roles
            .iter()
            .any(|r| crate::domain::Role::parse(r) == Some(role))
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::new(
                "listen",
                format!(
                    "{:?} is not an address:port such as 127.0.0.1:8080",
                    self.listen
                ),
            )
        })
    }

    /// The public URL without a trailing slash.
    /// The name an authenticator app shows next to brama's codes: the host of `public_url`
    /// (`brama` when it has none).
    pub fn issuer_name(&self) -> String {
        url::Url::parse(&self.public_url())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "brama".into())
    }

    pub fn public_url(&self) -> String {
        match self.public_url.as_deref() {
            Some(u) if !u.is_empty() => u.trim_end_matches('/').to_string(),
            _ => format!("http://{}", self.listen),
        }
    }

    pub fn issuer(&self) -> String {
        match self.issuer.as_deref() {
            Some(i) if !i.is_empty() => i.to_string(),
            _ => self.public_url(),
        }
    }

    /// Secure cookies and HSTS only make sense when people reach brama over https.
    pub fn https(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// The database URL, defaulting to a SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match self.database_url.as_deref() {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => format!("sqlite://{}", self.data_dir.join("brama.db").display()),
        }
    }
}

fn known_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults validate");
    }

    #[test]
    fn known_keys_cover_every_field() {
        let keys = known_keys();
        assert!(keys.contains(&"failed_logins_per_account".to_string()));
        assert!(keys.contains(&"database_url".to_string()));
        assert!(keys.contains(&"public_url".to_string()));
    }

    #[test]
    fn out_of_range_lifetime_names_the_setting() {
        let config = Config {
            access_token_minutes: 30,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.setting, "access_token_minutes");
    }
}
