//! `/admin/oidc-clients`: the organization's OpenID Connect clients (SPEC §14), for admins.
//! The same as `brama oidc client add|list|remove` on the command line.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::CoreError;
use crate::core::actor::ManageOidcClients;
use crate::core::oidc::{ClientForm, OidcClient};
use crate::core::rfc3339;
use crate::http::AppState;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, Json, Require};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
}

/// A client as admins see it; the secret appears once, in the answer that made it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    client_id: String,
    name: String,
    /// Only in the answer of `POST`, for a confidential client: keep it now, it is stored
    /// hashed and never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// No secret: the client must use PKCE (`token_endpoint_auth_method` `none`).
    public: bool,
    /// No consent screen.
    first_party: bool,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    /// `RS256` or `EdDSA`.
    id_token_alg: &'static str,
    /// `client_secret_basic` (a `client_secret_post` works too) or `none`.
    token_endpoint_auth_method: &'static str,
    created_at: String,
}

impl ClientBody {
    pub fn new(client: OidcClient, secret: Option<String>) -> ClientBody {
        ClientBody {
            public: client.is_public(),
            token_endpoint_auth_method: if client.is_public() {
                "none"
            } else {
                "client_secret_basic"
            },
            client_id: client.id,
            name: client.name,
            client_secret: secret,
            first_party: client.first_party,
            redirect_uris: client.redirect_uris,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            id_token_alg: client.id_token_alg.as_str(),
            created_at: rfc3339(client.created_at),
        }
    }
}

/// A client to register. camelCase names (`redirectUris`, ...) are accepted too.
#[derive(Deserialize, ToSchema)]
struct AddBody {
    name: Option<String>,
    #[serde(alias = "redirectUris")]
    redirect_uris: Option<Vec<String>>,
    #[serde(alias = "postLogoutRedirectUris")]
    post_logout_redirect_uris: Option<Vec<String>>,
    /// A client without a secret (a single-page or native app); PKCE is then required.
    #[serde(default)]
    public: bool,
    /// Trusted by the organization: its people are not asked to consent.
    #[serde(default, alias = "firstParty")]
    first_party: bool,
    /// `RS256` (default) or `EdDSA`.
    #[serde(alias = "idTokenAlg")]
    id_token_alg: Option<String>,
}

#[utoipa::path(get, path = "/api/admin/oidc-clients", tag = "admin", operation_id = "list_oidc_clients",
    responses((status = 200, description = "The organization's clients, oldest first; no secrets", body = Vec<ClientBody>), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    Require(granted): Require<ManageOidcClients>,
) -> Result<axum::Json<Vec<ClientBody>>, ApiError> {
    let clients = state.core.oidc_clients(&granted).await?;
    Ok(axum::Json(
        clients
            .into_iter()
            .map(|c| ClientBody::new(c, None))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/admin/oidc-clients", tag = "admin", operation_id = "add_oidc_client", request_body = AddBody,
    responses((status = 201, description = "Registered (audit `oidc.client_added`); `client_secret` is shown this once", body = ClientBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn add(
    State(state): State<AppState>,
    Require(granted): Require<ManageOidcClients>,
    Json(body): Json<AddBody>,
) -> Result<(StatusCode, axum::Json<ClientBody>), ApiError> {
    let form = ClientForm {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        public: body.public,
        first_party: body.first_party,
        id_token_alg: body.id_token_alg,
    };
    let new = form
        .check(state.core.plain_http())
        .map_err(CoreError::Validation)?;
    let added = state.core.add_oidc_client(&granted, new).await?;
    let secret = added.secret.map(|s| s.expose_secret().to_string());
    Ok((
        StatusCode::CREATED,
        axum::Json(ClientBody::new(added.client, secret)),
    ))
}

#[utoipa::path(delete, path = "/api/admin/oidc-clients/{id}", tag = "admin", operation_id = "remove_oidc_client", params(("id" = String, Path, description = "The client_id")),
    responses((status = 200, description = "Removed (audit `oidc.client_removed`)", body = super::MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "No such client in the organization", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    Require(granted): Require<ManageOidcClients>,
    Id(id): Id,
) -> Result<axum::Json<super::MessageBody>, ApiError> {
    state.core.remove_oidc_client(&granted, &id).await?;
    Ok(super::message(crate::i18n::Msg::OidcClientRemoved))
}
