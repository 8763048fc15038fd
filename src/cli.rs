//! The command line: `brama serve | migrate | user create | keys rotate | members | oidc client | outbox`.
//!
//! Commands that apply rules (`user create`, `members`) go through the core, as a surface
//! does, and describe its errors in one table (`describe`). Commands that only prepare or read
//! the database for the operator (`migrate`, `keys rotate`, `outbox`) open the store themselves,
//! without starting the core's hashing threads or connecting to Redis.

use std::io::BufRead;

use clap::{Args, Parser, Subcommand};

use crate::app::{Application, open_store};
use crate::config::{Config, Overrides};
use crate::core::accounts::Registration;
use crate::core::{Actor, Core, CoreError, StartupError, now_ms, rfc3339};
use crate::domain::{AccountEmail, Fields, Password, Role, Username};

#[derive(Debug, Parser)]
#[command(
    name = "brama",
    version,
    about = "Self-hosted authentication server and member registry"
)]
pub struct Cli {
    #[command(flatten)]
    pub overrides: Overrides,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage access-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the data key that encrypts members' PESELs.
    #[command(subcommand, name = "data-key")]
    DataKey(DataKeyCommand),
    /// Export or import the member register as CSV.
    #[command(subcommand)]
    Members(MembersCommand),
    /// OpenID Connect: the applications that sign people in through brama (SPEC §14).
    #[command(subcommand)]
    Oidc(OidcCommand),
    /// Show the emails in the outbox and how their delivery stands (without an SMTP server, each
    /// is kept until its link expires; with one, until a day after it was sent or given up).
    Outbox {
        /// Print a JSON array of {id, to, subject, body, created_at, expires_at, state, attempts,
        /// next_attempt_at, last_error, sent_at, failed_at}; state is kept, queued, retrying,
        /// sent or failed.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account in the default organization. The password is read from the first line
    /// of standard input, so it never appears in the process list or shell history.
    Create(UserCreate),
    /// Remove every second factor of an account and end its sessions (someone who lost their
    /// phone and their recovery codes); audited as `mfa.reset`.
    ResetMfa {
        /// The account's username (or email).
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Args)]
pub struct UserCreate {
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub email: String,
    /// user, moderator, admin or owner.
    #[arg(long, default_value = "user")]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// Register, list or remove clients.
    #[command(subcommand)]
    Client(OidcClientCommand),
}

#[derive(Debug, Subcommand)]
pub enum OidcClientCommand {
    /// Register a client. Prints its client id and, for a confidential client, its secret: the
    /// secret is shown this once and stored hashed.
    Add {
        /// What people see on the consent screen ("Wiki", "Nextcloud").
        #[arg(long)]
        name: String,
        /// Where brama may send people back with a code: matched exactly. Repeat for several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where a logout may send people back to. Repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// No secret (a single-page or native app): PKCE S256 is then required.
        #[arg(long)]
        public: bool,
        /// Trusted by the organization: no consent screen.
        #[arg(long = "first-party")]
        first_party: bool,
        /// How its ID tokens are signed: RS256 or EdDSA.
        #[arg(long = "id-token-alg", default_value = "RS256")]
        id_token_alg: String,
        /// Organization id [default: the default organization]
        #[arg(long)]
        organization: Option<String>,
        /// Print {client_id, client_secret, ...} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the organization's clients (never their secrets).
    List {
        /// Organization id [default: the default organization]
        #[arg(long)]
        organization: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a client: it can no longer sign anyone in.
    Remove {
        /// The client id.
        id: String,
        /// Organization id [default: the default organization]
        #[arg(long)]
        organization: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Write every member to FILE (UTF-8 with BOM, `;` unless --sep says otherwise).
    Export {
        file: std::path::PathBuf,
        #[arg(long, default_value = ";")]
        sep: String,
        /// Organization id [default: the default organization]
        #[arg(long)]
        organization: Option<String>,
    },
    /// Add every row of FILE, or none if any row is invalid (each bad row and field is listed).
    Import {
        file: std::path::PathBuf,
        /// Separator [default: detected from the header line]
        #[arg(long)]
        sep: Option<String>,
        /// Organization id [default: the default organization]
        #[arg(long)]
        organization: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key of each kind (Ed25519 for access tokens and EdDSA ID tokens, RSA-2048
    /// for RS256 ID tokens). Nodes sign with them within 10 s; the old public keys stay in the
    /// JWKS until every token they signed has expired.
    Rotate,
    /// Remove a signing key that has leaked, at once: every node refuses the tokens it signed
    /// within 10 s (their holders log in again). A key still signing is replaced first.
    Revoke {
        /// The key's id (`kid` in the JWKS and in each token's header).
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataKeyCommand {
    /// Add a data key and re-encrypt every PESEL under it, in batches, then drop the old key
    /// from the key file. Running nodes read the new key within 10 s (the command waits for
    /// that first). Killed, it is resumed by running it again.
    Rotate,
}

/// Runs a parsed command line; the error is printed by `main`.
pub async fn run(cli: Cli) -> Result<(), StartupError> {
    // Whatever brama writes (the database and its WAL, exports of the register) is its user's
    // alone, whatever umask it was started with.
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    let config = Config::load(&cli.overrides)?;
    match cli.command {
        Command::Serve => {
            crate::telemetry::init(config.log_format);
            let app = Application::build(config).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("database is up to date ({})", store.backend());
        }
        Command::User(UserCommand::ResetMfa { username }) => {
            let store = open_store(&config).await?;
            let core = Core::build(config, store).await?;
            let account = core
                .reset_mfa_of(&username)
                .await
                .map_err(|e| format!("could not reset the second factor: {}", describe(&e)))?;
            println!(
                "removed the second factors of {} ({username}) and ended its sessions",
                account.id
            );
        }
        Command::User(UserCommand::Create(args)) => {
            let Some(role) = Role::parse(&args.role) else {
                return Err(format!(
                    "--role must be user, moderator, admin or owner, not {:?}",
                    args.role
                )
                .into());
            };
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let mut f = Fields::new();
            let username = f.parse("username", Some(args.username.as_str()), Username::parse);
            let email = f.parse("email", Some(args.email.as_str()), AccountEmail::parse);
            let password = f.parse("password", Some(password), |p| {
                Password::parse(p, config.password_policy)
            });
            let (Some(username), Some(email), Some(password)) = (username, email, password) else {
                let e = CoreError::Validation(f.into_errors());
                return Err(format!("could not create the account: {}", describe(&e)).into());
            };
            let store = open_store(&config).await?;
            let core = Core::build(config, store).await?;
            let registration = Registration {
                username,
                email,
                password,
            };
            let account = core
                .create_account(registration, role)
                .await
                .map_err(|e| format!("could not create the account: {}", describe(&e)))?;
            println!(
                "created {} ({}) with role {}",
                account.id, args.username, account.role
            );
        }
        Command::Keys(KeysCommand::Rotate) => {
            let store = open_store(&config).await?;
            let new = crate::crypto::jwt::rotate(&store, now_ms()).await?;
            println!(
                "new signing keys {} (EdDSA) and {} (RS256); running nodes switch to them within 10 s",
                new.eddsa, new.rs256
            );
        }
        Command::Keys(KeysCommand::Revoke { kid }) => {
            let store = open_store(&config).await?;
            let replaced = crate::crypto::jwt::revoke(&store, &kid, now_ms())
                .await
                .map_err(|e| format!("could not revoke {kid}: {e}"))?;
            if let Some(new) = replaced {
                println!("new signing key {new} replaces {kid}");
            }
            println!("removed signing key {kid}; running nodes refuse its tokens within 10 s");
        }
        Command::Members(command) => members(config, command).await?,
        Command::Oidc(OidcCommand::Client(command)) => oidc_clients(config, command).await?,
        Command::DataKey(DataKeyCommand::Rotate) => {
            let store = open_store(&config).await?;
            let core = Core::build(config, store).await?;
            let (bar, progress) = progress_bar("re-encrypting PESELs", "");
            let rotation = core
                .rotate_data_key(crate::core::data_key::ROTATION_WAIT, &progress)
                .await;
            bar.finish_and_clear();
            let rotation = rotation.map_err(|e| describe(&e))?;
            if rotation.added {
                println!("new data key {}", rotation.key);
            } else {
                println!("went on with the rotation to data key {}", rotation.key);
            }
            println!("re-encrypted {} PESELs", rotation.reencrypted);
            if !rotation.retired.is_empty() {
                println!(
                    "removed data key {} from the key file; back up the new file",
                    rotation.retired.join(", ")
                );
            }
        }
        Command::Outbox { json } => {
            let store = open_store(&config).await?;
            let emails = store.outbox().await?;
            let time = |ms: Option<i64>| ms.map(rfc3339);
            if json {
                let list: Vec<serde_json::Value> = emails
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "id": e.id,
                            "to": e.recipient,
                            "subject": e.subject,
                            "body": e.body,
                            "created_at": rfc3339(e.created_at),
                            "expires_at": time(e.expires_at),
                            "state": e.state(),
                            "attempts": e.attempts,
                            "next_attempt_at": time(e.next_attempt_at),
                            "last_error": e.last_error,
                            "sent_at": time(e.sent_at),
                            "failed_at": time(e.failed_at),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if emails.is_empty() {
                println!("the outbox is empty");
            } else {
                for e in &emails {
                    println!(
                        "--- {} to {}: {}",
                        rfc3339(e.created_at),
                        e.recipient,
                        delivery_state(e)
                    );
                    println!("Subject: {}", e.subject);
                    if !e.body.is_empty() {
                        println!("\n{}", e.body);
                    }
                }
            }
        }
    }
    Ok(())
}

async fn oidc_clients(config: Config, command: OidcClientCommand) -> Result<(), StartupError> {
    use crate::core::actor::ManageOidcClients;
    use crate::core::oidc::{ClientForm, OidcClient};
    use secrecy::ExposeSecret;
    let store = open_store(&config).await?;
    let core = Core::build(config, store).await?;
    let grant = |organization: Option<String>| {
        let org = organization.unwrap_or_else(|| crate::store::DEFAULT_ORGANIZATION.to_string());
        Actor::operator(&org)
            .grant::<ManageOidcClients>()
            .map_err(|e| describe(&e))
    };
    let as_json = |c: &OidcClient, secret: Option<&str>| {
        serde_json::json!({
            "client_id": c.id,
            "client_secret": secret,
            "name": c.name,
            "public": c.is_public(),
            "first_party": c.first_party,
            "redirect_uris": c.redirect_uris,
            "post_logout_redirect_uris": c.post_logout_redirect_uris,
            "id_token_alg": c.id_token_alg.as_str(),
            "created_at": rfc3339(c.created_at),
        })
    };
    match command {
        OidcClientCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            first_party,
            id_token_alg,
            organization,
            json,
        } => {
            let granted = grant(organization)?;
            let new = ClientForm {
                name: Some(name),
                redirect_uris: Some(redirect_uris),
                post_logout_redirect_uris: Some(post_logout_redirect_uris),
                public,
                first_party,
                id_token_alg: Some(id_token_alg),
            }
            .check(core.plain_http())
            .map_err(|e| describe(&CoreError::Validation(e)))?;
            let added = core
                .add_oidc_client(&granted, new)
                .await
                .map_err(|e| describe(&e))?;
            let secret = added.secret.as_ref().map(|s| s.expose_secret());
            if json {
                println!("{}", as_json(&added.client, secret));
            } else {
                println!("client_id: {}", added.client.id);
                match secret {
                    Some(secret) => println!(
                        "client_secret: {secret}\n(shown this once: store it in the application now)"
                    ),
                    None => println!("public client: no secret, PKCE S256 required"),
                }
            }
        }
        OidcClientCommand::List { organization, json } => {
            let granted = grant(organization)?;
            let clients = core
                .oidc_clients(&granted)
                .await
                .map_err(|e| describe(&e))?;
            if json {
                let list: Vec<_> = clients.iter().map(|c| as_json(c, None)).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for c in &clients {
                    println!(
                        "{}  {}  {}{}  {}",
                        c.id,
                        c.name,
                        if c.is_public() {
                            "public"
                        } else {
                            "confidential"
                        },
                        if c.first_party { ", first-party" } else { "" },
                        c.redirect_uris.join(" ")
                    );
                }
            }
        }
        OidcClientCommand::Remove { id, organization } => {
            let granted = grant(organization)?;
            match core.remove_oidc_client(&granted, &id).await {
                Ok(()) => println!("removed client {id}"),
                Err(CoreError::NotFound) => {
                    return Err(format!("no client {id} in the organization").into());
                }
                Err(e) => return Err(describe(&e).into()),
            }
        }
    }
    Ok(())
}

async fn members(config: Config, command: MembersCommand) -> Result<(), StartupError> {
    use crate::core::members_csv::parse_separator;
    let store = open_store(&config).await?;
    let core = Core::build(config, store).await?;
    let separator = |s: &str| {
        parse_separator(s).ok_or_else(|| format!("--sep must be ;, ',', tab or |, not {s:?}"))
    };
    match command {
        MembersCommand::Export {
            file,
            sep,
            organization,
        } => {
            let org =
                organization.unwrap_or_else(|| crate::store::DEFAULT_ORGANIZATION.to_string());
            let granted = Actor::operator(&org).grant().map_err(|e| describe(&e))?;
            let csv = core
                .export_members_csv(&granted, separator(&sep)?)
                .await
                .map_err(|e| describe(&e))?;
            std::fs::write(&file, &csv)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            println!("wrote {} ({} bytes)", file.display(), csv.len());
        }
        MembersCommand::Import {
            file,
            sep,
            organization,
        } => {
            let org =
                organization.unwrap_or_else(|| crate::store::DEFAULT_ORGANIZATION.to_string());
            let data =
                std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let sep = sep.as_deref().map(separator).transpose()?;
            let (bar, progress) = progress_bar("checking", " rows");
            let granted = Actor::operator(&org).grant().map_err(|e| describe(&e))?;
            let result = core
                .import_members_csv(&granted, &data, sep, &progress)
                .await;
            bar.finish_and_clear();
            let imported = result.map_err(|e| describe(&e))?;
            println!("imported {imported} members");
        }
    }
    Ok(())
}

/// The one table from the core's errors to what the command line prints.
fn describe(e: &CoreError) -> String {
    match e {
        CoreError::Validation(fields) => fields
            .iter()
            .map(|f| crate::i18n::problem_text(f.field, f.problem, crate::i18n::Lang::En))
            .collect::<Vec<_>>()
            .join("; "),
        CoreError::UsernameTaken => "username is already in use".into(),
        CoreError::EmailTaken => "email is already in use".into(),
        CoreError::Import { errors, total } => {
            let mut lines: Vec<String> = errors
                .iter()
                .map(|e| {
                    format!(
                        "line {}: {}",
                        e.row,
                        crate::i18n::problem_text(&e.field, e.problem, crate::i18n::Lang::En)
                    )
                })
                .collect();
            if *total > errors.len() {
                lines.push(format!("... and {} more", total - errors.len()));
            }
            format!("nothing was imported:\n{}", lines.join("\n"))
        }
        other => other.to_string(),
    }
}

/// One line on where an email's delivery stands, for `brama outbox`.
fn delivery_state(e: &crate::store::OutboxRecord) -> String {
    let at = |ms: Option<i64>| ms.map(rfc3339).unwrap_or_default();
    let error = e.last_error.as_deref().unwrap_or("");
    match e.state() {
        "sent" => format!("sent at {} (body cleared)", at(e.sent_at)),
        "failed" => format!(
            "gave up at {} after {} attempts; last error: {error}",
            at(e.failed_at),
            e.attempts
        ),
        "retrying" => format!(
            "{} attempts failed (last: {error}); next at {}",
            e.attempts,
            at(e.next_attempt_at)
        ),
        "queued" => "queued for SMTP".into(),
        _ => "kept (no SMTP set): forward the link by hand".into(),
    }
}

/// A progress bar saying `message`, and the `progress(done, total)` that moves it.
fn progress_bar(
    message: &'static str,
    unit: &str,
) -> (indicatif::ProgressBar, impl Fn(u64, u64) + Send + Sync) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{msg}} [{{bar:40}}] {{pos}}/{{len}}{unit} ({{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    let moved = bar.clone();
    (bar, move |done: u64, total: u64| {
        moved.set_length(total);
        moved.set_position(done);
    })
}
