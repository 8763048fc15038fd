//! `/api/admin/*`: the accounts of the caller's organization and its audit trail.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::admin::AccountChange;
use crate::core::rfc3339;
use crate::http::AppState;
use crate::http::extract::{AppJson, AppPath, AppQuery, AuthUser, ClientInfo};
use crate::store::{AccountRecord, AuditRecord};

use super::error::ApiError;
use super::role_names;
use crate::http::openapi::ErrorBody;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, change))
        .routes(routes!(audit))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountBody {
    id: String,
    username: Option<String>,
    email: String,
    phone: Option<String>,
    name: String,
    surname: String,
    roles: Vec<String>,
    status: String,
    created_at: String,
}

impl From<AccountRecord> for AccountBody {
    fn from(a: AccountRecord) -> Self {
        AccountBody {
            roles: role_names(&a),
            id: a.id,
            username: a.username,
            email: a.email,
            phone: a.phone,
            name: a.name,
            surname: a.surname,
            status: a.status,
            created_at: rfc3339(a.created_at),
        }
    }
}

#[utoipa::path(get, path = "/api/admin/accounts", tag = "admin", responses((status = 200, description = "Accounts of the caller's organization", body = Vec<AccountBody>), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<AccountBody>>, ApiError> {
    let accounts = state.core.list_accounts(&user.claims).await?;
    Ok(Json(accounts.into_iter().map(AccountBody::from).collect()))
}

#[utoipa::path(get, path = "/api/admin/accounts/{id}", tag = "admin", params(("id" = String, Path)), responses((status = 200, description = "One account", body = AccountBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn one(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath,
) -> Result<Json<AccountBody>, ApiError> {
    Ok(Json(
        state.core.account_of_org(&user.claims, &id).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
struct ChangeBody {
    /// `user`, `moderator`, `admin`, `owner` (or `ROLE_ADMIN`-style); a one-element `roles`
    /// array is accepted too, as the login answer shows roles that way.
    role: Option<String>,
    roles: Option<Vec<String>>,
    status: Option<String>,
}

#[utoipa::path(patch, path = "/api/admin/accounts/{id}", tag = "admin", params(("id" = String, Path)), request_body = ChangeBody,
    responses((status = 200, description = "Changed", body = AccountBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn change(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppPath(id): AppPath,
    AppJson(body): AppJson<ChangeBody>,
) -> Result<Json<AccountBody>, ApiError> {
    let role = body
        .role
        .or_else(|| body.roles.and_then(|r| r.into_iter().next()));
    let change = AccountChange {
        role: role.as_deref(),
        status: body.status.as_deref(),
    };
    Ok(Json(
        state
            .core
            .change_account(&user.claims, &id, change, &client)
            .await?
            .into(),
    ))
}

#[derive(Deserialize, IntoParams)]
struct AuditQuery {
    /// Unix milliseconds: only events older than this (the next page).
    before: Option<i64>,
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AuditBody {
    id: String,
    actor: Option<String>,
    action: String,
    target: Option<String>,
    ip: Option<String>,
    at: String,
    at_ms: i64,
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(AuditQuery), responses((status = 200, description = "Newest first", body = Vec<AuditBody>), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn audit(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<Vec<AuditBody>>, ApiError> {
    let events: Vec<AuditRecord> = state
        .core
        .audit_trail(&user.claims, query.before, query.limit)
        .await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditBody {
                id: e.id,
                actor: e.actor_id,
                action: e.action,
                target: e.target,
                ip: e.ip,
                at: rfc3339(e.created_at),
                at_ms: e.created_at,
            })
            .collect(),
    ))
}
