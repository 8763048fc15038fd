//! Passkeys (SPEC §13): WebAuthn level 2 through webauthn-rs, as a second factor after a
//! password and, with a discoverable credential, as a sign-in of its own.
//!
//! The relying party is the host of `public_url`, the one origin `public_url`'s. Every
//! ceremony's state lives in the database between its start and its finish (any node finishes
//! what another started), found by the SHA-256 of its challenge: the browser's answer carries
//! the challenge back inside the client data it signs, so a finish needs no other handle (the
//! passwordless finish is `{credential}` alone). A ceremony is taken (deleted) by the first
//! finish that names it, right or wrong, and lives five minutes.
//!
//! User verification is required in every ceremony (webauthn-rs's passkey policy): a passkey
//! is something the person has and something they know or are, so a passwordless sign-in
//! counts as multi-factor (`amr` `hwk mfa`) and satisfies `mfa_required_roles`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

use crate::config::Config;
use crate::core::audit::AuditAction;
use crate::core::sessions::AMR_PASSKEY;
use crate::core::{Caller, Client, Core, CoreError, CoreResult, now_ms};
use crate::crypto::token_hash;
use crate::store::{AccountRecord, CeremonyRecord, PasskeyRecord};

/// How long a started ceremony can be finished.
pub const CEREMONY_MS: i64 = 5 * 60 * 1000;
/// The longest name a passkey may be given, in characters.
pub const NAME_MAX_CHARS: usize = 64;
/// How recent the caller's sign-in must be to add or remove a passkey: a passkey signs in on
/// its own, so a stolen session (or refresh token) must not be able to plant one for later.
pub const RECENT_SIGN_IN_MS: i64 = 15 * 60 * 1000;

/// The kinds of ceremony, as stored.
const REGISTER: &str = "register";
const SECOND_FACTOR: &str = "mfa";
const PASSWORDLESS: &str = "login";

/// A ceremony just started: its challenge and whose it is.
struct Started<'a> {
    challenge: &'a [u8],
    kind: &'static str,
    account_id: Option<String>,
    ticket_hash: Option<String>,
}

/// A passkey just registered, with the account's recovery codes when it is its first factor.
#[derive(Debug)]
pub struct NewPasskey {
    pub passkey: PasskeyRecord,
    pub recovery_codes: Option<Vec<String>>,
}

/// A passkey's name as its owner typed it: trimmed, 1 to 64 characters, no control characters.
pub fn passkey_name(raw: &str) -> Result<String, crate::domain::Problem> {
    use crate::domain::Problem;
    let name = raw.trim();
    if name.is_empty() {
        return Err(Problem::Required);
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(Problem::Length {
            min: 1,
            max: NAME_MAX_CHARS,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(Problem::Characters);
    }
    Ok(name.to_string())
}

/// The relying party of `config`: id = the host of `public_url`, origin = `public_url`'s.
///
/// Browsers accept no IP address as a relying party id, so a `public_url` on an IP (the
/// default, `http://127.0.0.1:8080`) makes the relying party `localhost` on the same port: on
/// such a setup passkeys work when the page is opened at `http://localhost:PORT`. Where
/// `public_url` is not set at all, any port of `localhost` is accepted (a development setup).
pub(crate) fn relying_party(config: &Config) -> Result<Webauthn, String> {
    let public = config.public_url();
    let url = Url::parse(&public).map_err(|e| format!("invalid setting `public_url`: {e}"))?;
    let (rp_id, origin) = match url.host() {
        Some(url::Host::Domain(host)) => (host.to_string(), url.origin().ascii_serialization()),
        _ => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            (
                "localhost".to_string(),
                format!("{}://localhost{port}", url.scheme()),
            )
        }
    };
    let origin = Url::parse(&origin).map_err(|e| format!("invalid setting `public_url`: {e}"))?;
    let name = config.issuer_name();
    let unset = config.public_url.as_deref().is_none_or(str::is_empty);
    WebauthnBuilder::new(&rp_id, &origin)
        .map(|b| b.rp_name(&name).allow_any_port(unset))
        .and_then(WebauthnBuilder::build)
        .map_err(|e| {
            format!("invalid setting `public_url`: {public:?} cannot be a WebAuthn origin: {e}")
        })
}

/// The key a ceremony is stored under: SHA-256 of its challenge (base64url).
fn challenge_key(challenge: &[u8]) -> String {
    token_hash(&URL_SAFE_NO_PAD.encode(challenge))
}

/// The key of the ceremony a browser's answer belongs to, read from the challenge in its client
/// data. `None`: the client data is not what a browser sends.
fn answered_ceremony(client_data_json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ClientData {
        challenge: String,
    }
    let data: ClientData = serde_json::from_slice(client_data_json).ok()?;
    let challenge = URL_SAFE_NO_PAD
        .decode(data.challenge.trim_end_matches('='))
        .ok()?;
    Some(challenge_key(&challenge))
}

/// A registration answer (`navigator.credentials.create()`'s, as JSON) and its ceremony's key.
fn registration(
    credential: serde_json::Value,
) -> CoreResult<(RegisterPublicKeyCredential, String)> {
    let reg: RegisterPublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| CoreError::CredentialMalformed)?;
    let key =
        answered_ceremony(&reg.response.client_data_json).ok_or(CoreError::CredentialMalformed)?;
    Ok((reg, key))
}

/// A sign-in answer (`navigator.credentials.get()`'s, as JSON) and its ceremony's key.
pub(crate) fn assertion(
    credential: serde_json::Value,
) -> CoreResult<(PublicKeyCredential, String)> {
    let cred: PublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| CoreError::CredentialMalformed)?;
    let key =
        answered_ceremony(&cred.response.client_data_json).ok_or(CoreError::CredentialMalformed)?;
    Ok((cred, key))
}

fn internal(what: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(format!("{what}: {e}"))
}

/// A stored passkey, opened.
fn opened(record: &PasskeyRecord) -> CoreResult<Passkey> {
    serde_json::from_str(&record.credential)
        .map_err(|e| internal(&format!("passkey {} as stored", record.id), e))
}

/// A ceremony's state as stored.
fn ceremony_state<T: serde::de::DeserializeOwned>(ceremony: &CeremonyRecord) -> CoreResult<T> {
    serde_json::from_str(&ceremony.state).map_err(|e| internal("a WebAuthn ceremony's state", e))
}

fn to_json<T: serde::Serialize>(what: &str, value: &T) -> CoreResult<String> {
    serde_json::to_string(value).map_err(|e| internal(what, e))
}

/// The options a browser gets, as JSON (`{"publicKey": …}`).
fn options<T: serde::Serialize>(value: &T) -> CoreResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| internal("WebAuthn options", e))
}

impl Core {
    /// The options for `navigator.credentials.create()`: a new passkey for the caller. Its
    /// existing ones are excluded (an authenticator holds one per account), and a discoverable
    /// credential is preferred, so that it can also sign in without a password.
    pub async fn start_passkey_registration(
        &self,
        caller: &Caller,
    ) -> CoreResult<serde_json::Value> {
        self.recent_sign_in(caller).await?;
        let account = self
            .store
            .account(&caller.account_id)
            .await?
            .filter(|a| a.organization_id == caller.organization_id)
            .ok_or(CoreError::TokenInvalid)?;
        let user = Uuid::parse_str(&account.id).map_err(|e| internal("an account id", e))?;
        let exclude = self
            .store
            .passkeys(&account.id)
            .await?
            .iter()
            .map(|p| opened(p).map(|k| k.cred_id().clone()))
            .collect::<CoreResult<Vec<_>>>()?;
        let login = account.username.clone().unwrap_or(account.email.clone());
        let display = display_name(&account);
        let (creation, state) = self
            .webauthn
            .start_passkey_registration(user, &login, &display, Some(exclude))
            .map_err(|e| internal("starting a passkey registration", e))?;
        let mut answer = options(&creation)?;
        if let Some(selection) = answer["publicKey"]["authenticatorSelection"].as_object_mut() {
            selection.insert("residentKey".into(), "preferred".into());
        }
        let now = now_ms();
        let started = Started {
            challenge: &creation.public_key.challenge,
            kind: REGISTER,
            account_id: Some(account.id.clone()),
            ticket_hash: None,
        };
        self.keep_ceremony(started, &state, now).await?;
        Ok(answer)
    }

    /// The browser's answer to [`Core::start_passkey_registration`]: the passkey is the
    /// caller's from now (audited `mfa.enabled`). If it is the account's first second factor,
    /// the account gets its recovery codes, shown this once.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Caller,
        name: &str,
        credential: serde_json::Value,
        client: &Client,
    ) -> CoreResult<NewPasskey> {
        let (reg, key) = registration(credential)?;
        self.recent_sign_in(caller).await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        // The account's row, locked: its factors change one at a time (the first one brings the
        // recovery codes).
        tx.account(&caller.account_id).await?;
        let ceremony = tx.take_ceremony(&key, REGISTER).await?.filter(|c| {
            c.account_id.as_deref() == Some(caller.account_id.as_str()) && c.expires_at > now
        });
        let Some(ceremony) = ceremony else {
            tx.commit().await?;
            return Err(CoreError::PasskeyRejected);
        };
        let state: PasskeyRegistration = ceremony_state(&ceremony)?;
        let passkey = match self.webauthn.finish_passkey_registration(&reg, &state) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(error = %e, "a passkey registration was refused");
                tx.commit().await?;
                return Err(CoreError::PasskeyRejected);
            }
        };
        let first = tx.second_factors(&caller.account_id).await?.none();
        let record = PasskeyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            account_id: caller.account_id.clone(),
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            name: name.to_string(),
            credential: to_json("a passkey", &passkey)?,
            sign_count: 0,
            created_at: now,
            last_used_at: None,
        };
        if !tx.insert_passkey(&record).await? {
            tx.commit().await?;
            return Err(CoreError::PasskeyExists);
        }
        let recovery_codes = if first {
            Some(
                self.new_recovery_codes(&mut *tx, &caller.account_id)
                    .await?,
            )
        } else {
            None
        };
        tx.record_audit(
            &self.mfa_event(caller, AuditAction::MfaEnabled, client),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(NewPasskey {
            passkey: record,
            recovery_codes,
        })
    }

    /// Removes one of the caller's passkeys (audited `mfa.disabled`); with the last second
    /// factor go the recovery codes.
    pub async fn delete_passkey(
        &self,
        caller: &Caller,
        id: &str,
        client: &Client,
    ) -> CoreResult<()> {
        self.recent_sign_in(caller).await?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        tx.account(&caller.account_id).await?;
        if !tx.delete_passkey(&caller.account_id, id).await? {
            return Err(CoreError::NotFound);
        }
        self.factor_removed(tx, caller, client, now).await
    }

    /// The options for `navigator.credentials.get()` in the second step of a login: any of
    /// the account's passkeys. The ceremony belongs to the login's ticket.
    pub async fn start_passkey_second_factor(
        &self,
        mfa_token: &str,
        client: &Client,
    ) -> CoreResult<serde_json::Value> {
        self.count_ceremony_start(client).await?;
        let now = now_ms();
        let hash = token_hash(mfa_token);
        let ticket = self
            .store
            .mfa_ticket(&hash)
            .await?
            .filter(|t| crate::core::accounts::live_ticket(t, now))
            .ok_or(CoreError::MfaTokenInvalid)?;
        let passkeys = self
            .store
            .passkeys(&ticket.account_id)
            .await?
            .iter()
            .map(opened)
            .collect::<CoreResult<Vec<_>>>()?;
        if passkeys.is_empty() {
            return Err(CoreError::NoPasskey);
        }
        let (request, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| internal("starting a passkey sign-in", e))?;
        let started = Started {
            challenge: &request.public_key.challenge,
            kind: SECOND_FACTOR,
            account_id: Some(ticket.account_id),
            ticket_hash: Some(hash),
        };
        self.keep_ceremony(started, &state, now).await?;
        options(&request)
    }

    /// Checks the browser's answer to [`Core::start_passkey_second_factor`] in the login's
    /// transaction: taken ceremony of this ticket, a signature by one of the account's
    /// passkeys; its counter and last use are recorded. `Err`: not proven, with the error the
    /// client gets (the caller counts it against the ticket).
    pub(crate) async fn prove_passkey(
        &self,
        tx: &mut dyn crate::store::Tx,
        account: &AccountRecord,
        ticket_hash: &str,
        credential: serde_json::Value,
        now: i64,
    ) -> CoreResult<Result<(), CoreError>> {
        let (cred, key) = match assertion(credential) {
            Ok(parsed) => parsed,
            Err(e) => return Ok(Err(e)),
        };
        let ceremony = tx.take_ceremony(&key, SECOND_FACTOR).await?.filter(|c| {
            c.ticket_hash.as_deref() == Some(ticket_hash)
                && c.account_id.as_deref() == Some(account.id.as_str())
                && c.expires_at > now
        });
        let Some(ceremony) = ceremony else {
            return Ok(Err(CoreError::PasskeyInvalid));
        };
        let state: PasskeyAuthentication = ceremony_state(&ceremony)?;
        let result = match self.webauthn.finish_passkey_authentication(&cred, &state) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "a passkey sign-in was refused");
                return Ok(Err(CoreError::PasskeyInvalid));
            }
        };
        let credential_id = URL_SAFE_NO_PAD.encode(result.cred_id());
        let Some(record) = tx
            .passkey_by_credential(&credential_id)
            .await?
            .filter(|p| p.account_id == account.id)
        else {
            // Removed between the start and the finish.
            return Ok(Err(CoreError::PasskeyInvalid));
        };
        if !self.passkey_used(tx, record, &result, now).await? {
            return Ok(Err(CoreError::PasskeyInvalid));
        }
        Ok(Ok(()))
    }

    /// The options for a passwordless sign-in with a discoverable credential: no account named
    /// (the authenticator offers the person the passkeys it holds for this site).
    pub async fn start_passkey_login(&self, client: &Client) -> CoreResult<serde_json::Value> {
        self.count_ceremony_start(client).await?;
        let (request, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| internal("starting a passwordless sign-in", e))?;
        let now = now_ms();
        let started = Started {
            challenge: &request.public_key.challenge,
            kind: PASSWORDLESS,
            account_id: None,
            ticket_hash: None,
        };
        self.keep_ceremony(started, &state, now).await?;
        // webauthn-rs suggests `mediation: conditional` (autofill); the surfaces answer the
        // `publicKey` options alone and the page picks how the browser asks.
        options(&request)
    }

    /// The browser's answer to [`Core::start_passkey_login`]: the account whose passkey signed
    /// it is signed in (`amr` `hwk mfa`). Every attempt counts against the client's address
    /// like a failed login until one succeeds; a refused one is audited `login.failed` when the
    /// credential names an account.
    pub async fn finish_passkey_login(
        &self,
        credential: serde_json::Value,
        client: &Client,
    ) -> CoreResult<(AccountRecord, crate::core::sessions::IssuedSession)> {
        let attempt = self.reserve_address_attempt(client).await?;
        let (cred, key) = assertion(credential)?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        let ceremony = tx
            .take_ceremony(&key, PASSWORDLESS)
            .await?
            .filter(|c| c.expires_at > now);
        let refused = |account: Option<&AccountRecord>| {
            AuditAction::LoginFailed.event(
                account.map(|a| a.organization_id.as_str()),
                None,
                account.map(|a| a.id.clone()),
                client.ip,
            )
        };
        let Some(ceremony) = ceremony else {
            tx.commit().await?;
            return Err(CoreError::PasskeyInvalid);
        };
        let state: DiscoverableAuthentication = ceremony_state(&ceremony)?;
        let credential_id = URL_SAFE_NO_PAD.encode(cred.get_credential_id());
        // The credential must be registered, to the account the authenticator says it is for.
        let handle = cred
            .get_user_unique_id()
            .and_then(|h| Uuid::from_slice(h).ok())
            .map(|u| u.to_string());
        let record = tx
            .passkey_by_credential(&credential_id)
            .await?
            .filter(|p| handle.as_deref() == Some(p.account_id.as_str()));
        let account = match &record {
            Some(r) => tx
                .account(&r.account_id)
                .await?
                .filter(|a| a.status.may_log_in()),
            None => None,
        };
        let (Some(record), Some(account)) = (record, account) else {
            tx.commit().await?;
            return Err(CoreError::PasskeyInvalid);
        };
        let key = DiscoverableKey::from(&opened(&record)?);
        // finish_discoverable_authentication_v2 wants webauthn-rs's internal `Credential`,
        // which only its `danger-credential-internals` feature names; this one clones a key.
        #[allow(deprecated)]
        let verified = self
            .webauthn
            .finish_discoverable_authentication(&cred, state, &[key]);
        let used = match verified {
            Ok(result) => self.passkey_used(&mut *tx, record, &result, now).await?,
            Err(e) => {
                tracing::info!(error = %e, "a passwordless sign-in was refused");
                false
            }
        };
        if !used {
            tx.record_audit(&refused(Some(&account)), now).await?;
            tx.commit().await?;
            crate::telemetry::count_login(false);
            return Err(CoreError::PasskeyInvalid);
        }
        let issued = self
            .signed_in(tx, &account, client, now, AMR_PASSKEY)
            .await?;
        self.login_attempt_succeeded(attempt).await;
        Ok((account, issued))
    }

    /// Stores a ceremony just started, with webauthn-rs's state, for five minutes.
    async fn keep_ceremony<T: serde::Serialize>(
        &self,
        started: Started<'_>,
        state: &T,
        now: i64,
    ) -> CoreResult<()> {
        let ceremony = CeremonyRecord {
            challenge_hash: challenge_key(started.challenge),
            kind: started.kind.into(),
            account_id: started.account_id,
            ticket_hash: started.ticket_hash,
            state: to_json("a WebAuthn ceremony", state)?,
            created_at: now,
            expires_at: now + CEREMONY_MS,
        };
        let mut tx = self.begin().await?;
        tx.insert_ceremony(&ceremony).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a verified use of `record` (read locked in `tx`): its signature counter, and
    /// when. False, and nothing recorded, when the authenticator keeps a counter and it did not
    /// go up since the last use: a cloned authenticator, or a use that raced another (webauthn-rs
    /// compared it with the counter as it was when the ceremony started).
    async fn passkey_used(
        &self,
        tx: &mut dyn crate::store::Tx,
        record: PasskeyRecord,
        result: &webauthn_rs::prelude::AuthenticationResult,
        now: i64,
    ) -> CoreResult<bool> {
        let counter = i64::from(result.counter());
        if counter > 0 && counter <= record.sign_count {
            return Ok(false);
        }
        let mut passkey = opened(&record)?;
        passkey.update_credential(result);
        tx.passkey_used(
            &record.id,
            &to_json("a passkey", &passkey)?,
            counter.max(record.sign_count),
            now,
        )
        .await?;
        Ok(true)
    }

    /// Refuses a caller whose session was opened more than [`RECENT_SIGN_IN_MS`] ago.
    pub(crate) async fn recent_sign_in(&self, caller: &Caller) -> CoreResult<()> {
        let session = self
            .store
            .session(&caller.session_id)
            .await?
            .filter(|s| s.account_id == caller.account_id && s.revoked_at.is_none())
            .ok_or(CoreError::TokenInvalid)?;
        if session.created_at < now_ms() - RECENT_SIGN_IN_MS {
            return Err(CoreError::ReauthenticationRequired);
        }
        Ok(())
    }
}

/// What an authenticator shows as the account's name: name and surname, else the login.
fn display_name(account: &AccountRecord) -> String {
    let full = format!("{} {}", account.name, account.surname);
    match full.trim() {
        "" => account
            .username
            .clone()
            .unwrap_or_else(|| account.email.clone()),
        name => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_url: Option<&str>) -> Config {
        Config {
            public_url: public_url.map(str::to_owned),
            ..Config::default()
        }
    }

    #[test]
    fn a_passkey_name_is_trimmed_and_bounded() {
        use crate::domain::Problem;
        assert_eq!(passkey_name("  Telefon ").unwrap(), "Telefon");
        assert_eq!(passkey_name(" \t"), Err(Problem::Required));
        assert_eq!(passkey_name(&"ż".repeat(64)).unwrap().chars().count(), 64);
        assert!(matches!(
            passkey_name(&"ż".repeat(65)),
            Err(Problem::Length { .. })
        ));
        assert_eq!(passkey_name("a\u{0}b"), Err(Problem::Characters));
    }

    /// The origins the relying party of this `public_url` accepts.
    fn origins(public_url: Option<&str>) -> Vec<String> {
        relying_party(&config(public_url))
            .unwrap()
            .get_allowed_origins()
            .iter()
            .map(|u| u.origin().ascii_serialization())
            .collect()
    }

    #[test]
    fn the_relying_party_is_the_host_of_public_url() {
        assert_eq!(
            origins(Some("https://brama.example.org/")),
            ["https://brama.example.org"]
        );
    }

    #[test]
    fn an_ip_address_becomes_localhost() {
        assert_eq!(
            origins(Some("http://127.0.0.1:9000")),
            ["http://localhost:9000"]
        );
        assert_eq!(origins(None), ["http://localhost:8080"]);
    }

    #[test]
    fn the_ceremony_is_found_by_the_challenge_the_browser_signed() {
        let challenge = [7u8; 32];
        let client_data = format!(
            r#"{{"type":"webauthn.get","challenge":"{}","origin":"https://x"}}"#,
            URL_SAFE_NO_PAD.encode(challenge)
        );
        assert_eq!(
            answered_ceremony(client_data.as_bytes()),
            Some(challenge_key(&challenge))
        );
        assert_eq!(answered_ceremony(b"{}"), None);
        assert_eq!(answered_ceremony(br#"{"challenge":"***"}"#), None);
        assert_eq!(answered_ceremony(b"\xff"), None);
    }
}
