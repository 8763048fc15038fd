//! OpenID Connect (SPEC §14): the organization's clients, the applications that sign their
//! people in through brama.
//!
//! A client belongs to one organization and only that organization's accounts can sign in to it.
//! A confidential client gets a secret of 256 random bits, shown once and stored as its SHA-256
//! (a plain hash is enough for a secret with that much entropy, as for refresh tokens); a public
//! client (a single-page or native app) has none and must use PKCE. Redirect URIs are matched
//! exactly as registered, so they are checked here once: absolute `https` URIs without a
//! fragment (RFC 6749 §3.1.2), `http` only for a loopback host (RFC 8252 §7.3) or when brama's
//! own `public_url` is `http` (an intranet or a test, where insisting on TLS for the
//! applications would protect nothing).

use secrecy::SecretString;

use crate::core::actor::{Granted, ManageOidcClients};
use crate::core::{AuditAction, Core, CoreError, CoreResult, now_ms};
use crate::crypto::jwt::IdTokenAlg;
use crate::crypto::{random_token, token_hash};
use crate::domain::{FieldError, Fields, Problem};
use crate::store::OidcClientRecord;

/// At most this many redirect URIs (and as many post-logout URIs) per client.
pub const MAX_URIS: usize = 10;
/// The longest URI accepted.
pub const MAX_URI_CHARS: usize = 2000;
/// The longest client name.
pub const MAX_NAME_CHARS: usize = 100;

/// How long the token endpoint trusts its copy of a client (`Core::token_client`).
const CLIENT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// A client as the rest of brama sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClient {
    /// The `client_id`.
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// SHA-256 of the secret, hex; `None` for a public client.
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Trusted by the organization: no consent screen.
    pub first_party: bool,
    pub id_token_alg: IdTokenAlg,
    pub created_at: i64,
}

impl OidcClient {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    fn from_record(r: OidcClientRecord) -> CoreResult<Self> {
        let corrupt = |what: &str| CoreError::Internal(format!("OIDC client {}: {what}", r.id));
        let uris = |json: &str| serde_json::from_str::<Vec<String>>(json);
        Ok(OidcClient {
            redirect_uris: uris(&r.redirect_uris).map_err(|_| corrupt("redirect_uris"))?,
            post_logout_redirect_uris: uris(&r.post_logout_redirect_uris)
                .map_err(|_| corrupt("post_logout_redirect_uris"))?,
            id_token_alg: IdTokenAlg::parse(&r.id_token_alg).ok_or_else(|| corrupt("alg"))?,
            first_party: r.first_party != 0,
            id: r.id,
            organization_id: r.organization_id,
            name: r.name,
            secret_hash: r.secret_hash,
            created_at: r.created_at,
        })
    }
}

/// A client to register, checked.
#[derive(Debug, Clone)]
pub struct NewOidcClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    pub id_token_alg: IdTokenAlg,
}

/// What a registration gives: the client, and its secret, which is never shown again.
#[derive(Debug)]
pub struct ClientAdded {
    pub client: OidcClient,
    /// `None` for a public client.
    pub secret: Option<SecretString>,
}

/// A registration as sent (the admin API's JSON, the command line's flags), before any check.
#[derive(Debug, Default, Clone)]
pub struct ClientForm {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub public: bool,
    pub first_party: bool,
    pub id_token_alg: Option<String>,
}

impl ClientForm {
    /// The checked client, or every problem by field (`name`, `redirect_uris`,
    /// `post_logout_redirect_uris`, `id_token_alg`). `plain_http`: whether `http` URIs of
    /// hosts other than loopback are allowed (brama itself is served over `http`).
    pub fn check(self, plain_http: bool) -> Result<NewOidcClient, Vec<FieldError>> {
        let mut fields = Fields::new();
        let name = fields.parse("name", self.name.as_deref(), client_name);
        let redirect_uris = fields.parse("redirect_uris", self.redirect_uris, |uris| {
            uri_list(uris, 1, plain_http)
        });
        let post_logout_redirect_uris = fields.optional(
            "post_logout_redirect_uris",
            self.post_logout_redirect_uris,
            |uris| uri_list(uris, 0, plain_http),
        );
        let id_token_alg = fields.optional("id_token_alg", self.id_token_alg.as_deref(), |alg| {
            IdTokenAlg::parse(alg).ok_or(Problem::Format)
        });
        match (name, redirect_uris, post_logout_redirect_uris, id_token_alg) {
            (Some(name), Some(redirect_uris), Some(post_logout), Some(alg))
                if fields.is_empty() =>
            {
                Ok(NewOidcClient {
                    name,
                    redirect_uris,
                    post_logout_redirect_uris: post_logout.unwrap_or_default(),
                    public: self.public,
                    first_party: self.first_party,
                    id_token_alg: alg.unwrap_or(IdTokenAlg::RS256),
                })
            }
            _ => Err(fields.into_errors()),
        }
    }
}

fn client_name(name: &str) -> Result<String, Problem> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Problem::Required);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Problem::Length {
            min: 1,
            max: MAX_NAME_CHARS,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(Problem::Characters);
    }
    Ok(name.to_string())
}

fn uri_list(uris: Vec<String>, min: usize, plain_http: bool) -> Result<Vec<String>, Problem> {
    if uris.len() < min || uris.len() > MAX_URIS {
        return Err(Problem::Length { min, max: MAX_URIS });
    }
    let mut checked: Vec<String> = Vec::with_capacity(uris.len());
    for uri in uris {
        check_uri(&uri, plain_http)?;
        if !checked.contains(&uri) {
            checked.push(uri);
        }
    }
    Ok(checked)
}

/// An absolute `https` URI (or `http` as the module says), without a fragment or user info,
/// exactly as a relying party will send it: nothing is normalized, so what is stored is what is
/// compared.
pub fn check_uri(uri: &str, plain_http: bool) -> Result<(), Problem> {
    if uri.is_empty() {
        return Err(Problem::Required);
    }
    if uri.chars().count() > MAX_URI_CHARS {
        return Err(Problem::Length {
            min: 1,
            max: MAX_URI_CHARS,
        });
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Problem::Characters);
    }
    let parsed = url::Url::parse(uri).map_err(|_| Problem::Format)?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let scheme_ok = match parsed.scheme() {
        "https" => true,
        "http" => plain_http || loopback,
        _ => false,
    };
    if !scheme_ok
        || host.is_empty()
        || parsed.fragment().is_some()
        || uri.contains('#')
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(Problem::Format);
    }
    Ok(())
}

impl Core {
    /// Whether brama is served over plain `http` (its `public_url`): then so may clients be.
    pub fn plain_http(&self) -> bool {
        self.config.public_url().starts_with("http://")
    }

    /// Registers a client of the actor's organization (audited `oidc.client_added`).
    pub async fn add_oidc_client(
        &self,
        granted: &Granted<ManageOidcClients>,
        new: NewOidcClient,
    ) -> CoreResult<ClientAdded> {
        let now = now_ms();
        let secret = (!new.public).then(random_token);
        let to_json = |uris: &[String]| {
            serde_json::to_string(uris).map_err(|e| CoreError::Internal(e.to_string()))
        };
        let record = OidcClientRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            organization_id: granted.organization_id.clone(),
            name: new.name,
            secret_hash: secret.as_deref().map(token_hash),
            redirect_uris: to_json(&new.redirect_uris)?,
            post_logout_redirect_uris: to_json(&new.post_logout_redirect_uris)?,
            first_party: i64::from(new.first_party),
            id_token_alg: new.id_token_alg.as_str().to_string(),
            created_at: now,
        };
        let mut tx = self.begin().await?;
        tx.insert_oidc_client(&record).await?;
        tx.record_audit(
            &AuditAction::OidcClientAdded.event(
                Some(&granted.organization_id),
                granted.account_id.as_deref(),
                Some(record.id.clone()),
                granted.ip,
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ClientAdded {
            client: OidcClient::from_record(record)?,
            secret: secret.map(SecretString::from),
        })
    }

    /// The actor's organization's clients, oldest first.
    pub async fn oidc_clients(
        &self,
        granted: &Granted<ManageOidcClients>,
    ) -> CoreResult<Vec<OidcClient>> {
        self.store
            .oidc_clients(&granted.organization_id)
            .await?
            .into_iter()
            .map(OidcClient::from_record)
            .collect()
    }

    /// Removes one of the organization's clients (audited `oidc.client_removed`); another
    /// organization's client is as unknown as one that never was.
    pub async fn remove_oidc_client(
        &self,
        granted: &Granted<ManageOidcClients>,
        id: &str,
    ) -> CoreResult<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        if !tx.delete_oidc_client(&granted.organization_id, id).await? {
            return Err(CoreError::NotFound);
        }
        // Its grants end with it: refresh tokens and access tokens stop at once.
        tx.revoke_client_sessions(id, crate::domain::RevokeReason::OidcRevoked, now)
            .await?;
        tx.record_audit(
            &AuditAction::OidcClientRemoved.event(
                Some(&granted.organization_id),
                granted.account_id.as_deref(),
                Some(id.to_string()),
                granted.ip,
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        self.client_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(())
    }

    /// [`Core::oidc_client`] for the token and revocation endpoints, which authenticate a
    /// client on every request: a client read in the last second is not read again (at a
    /// thousand exchanges a second, the read was a tenth of an exchange's work). Only these
    /// endpoints use the copy, because a copy of a client that another node (or `brama oidc
    /// client remove`) removed meanwhile can do nothing there: its codes went with it and its
    /// grants were revoked, so it gets `invalid_grant`. Authorization, which stores rows that
    /// name the client, always reads it.
    pub(crate) async fn token_client(&self, id: &str) -> CoreResult<Option<OidcClient>> {
        let cached = self
            .client_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|(_, seen)| seen.elapsed() < CLIENT_CACHE_TTL)
            .map(|(client, _)| client.clone());
        if cached.is_some() {
            return Ok(cached);
        }
        let client = self.oidc_client(id).await?;
        if let Some(client) = &client {
            let mut cache = self.client_cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= 1000 {
                cache.retain(|_, (_, seen)| seen.elapsed() < CLIENT_CACHE_TTL);
            }
            cache.insert(
                client.id.clone(),
                (client.clone(), std::time::Instant::now()),
            );
        }
        Ok(client)
    }

    /// A client by its `client_id`, of whichever organization (the OAuth endpoints know the
    /// client before they know the person).
    pub async fn oidc_client(&self, id: &str) -> CoreResult<Option<OidcClient>> {
        // Ids are 32 hex digits: anything else (a NUL PostgreSQL would refuse, a megabyte) is
        // no client, without asking the database.
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        match self.store.oidc_client(id).await? {
            Some(record) => Ok(Some(OidcClient::from_record(record)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_absolute_https_without_fragment_or_user_info() {
        for good in [
            "https://wiki.example.org/callback",
            "https://files.example.org:8443/apps/user_oidc/code?x=1",
            "http://localhost:3000/cb",
            "http://127.0.0.1:8080/oauth2/callback",
            "http://[::1]:9000/cb",
        ] {
            assert_eq!(check_uri(good, false), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/callback",
            "wiki.example.org/callback",
            "https://wiki.example.org/cb#frag",
            "https://wiki.example.org/cb#",
            "https://user:pw@wiki.example.org/cb",
            "http://wiki.example.org/cb",
            "javascript:alert(1)",
            "ftp://example.org/cb",
            "https://wiki.example.org/c b",
            "https://wiki.example.org/cb\n",
        ] {
            assert!(check_uri(bad, false).is_err(), "{bad:?}");
        }
        assert_eq!(check_uri("http://wiki.example.org/cb", true), Ok(()));
        let long = format!("https://example.org/{}", "a".repeat(MAX_URI_CHARS));
        assert!(matches!(
            check_uri(&long, false),
            Err(Problem::Length { .. })
        ));
    }

    #[test]
    fn a_form_is_checked_field_by_field() {
        let form = ClientForm {
            name: Some("  ".into()),
            redirect_uris: Some(vec![]),
            post_logout_redirect_uris: Some(vec!["nope".into()]),
            id_token_alg: Some("HS256".into()),
            ..ClientForm::default()
        };
        let errors = form.check(false).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "name",
                "redirect_uris",
                "post_logout_redirect_uris",
                "id_token_alg"
            ]
        );
        let ok = ClientForm {
            name: Some(" Wiki ".into()),
            redirect_uris: Some(vec![
                "https://wiki.example.org/cb".into(),
                "https://wiki.example.org/cb".into(),
            ]),
            ..ClientForm::default()
        }
        .check(false)
        .unwrap();
        assert_eq!(ok.name, "Wiki");
        assert_eq!(ok.redirect_uris, ["https://wiki.example.org/cb"]);
        assert_eq!(ok.id_token_alg, IdTokenAlg::RS256);
        assert!(ok.post_logout_redirect_uris.is_empty());
    }
}
