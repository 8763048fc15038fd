//! `/admin/*`: the accounts of the caller's organization and its audit trail.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::core::actor::{ManageAccounts, ReadAudit};
use crate::core::admin::AccountChange;
use crate::core::{AccountRecord, AccountStatus, rfc3339};
use crate::domain::{Fields, Problem};
use crate::http::AppState;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, Json, Query, Require};
use super::{invalid, parse_role, role_names};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one, change))
        .routes(routes!(reset_mfa))
        .routes(routes!(audit))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct AccountBody {
    id: String,
    username: Option<String>,
    email: String,
    phone: Option<String>,
    name: String,
    surname: String,
    roles: Vec<String>,
    /// `pending_activation`, `active` or `disabled`.
    status: &'static str,
    created_at: String,
}

impl From<AccountRecord> for AccountBody {
    fn from(a: AccountRecord) -> Self {
        AccountBody {
            roles: role_names(a.role),
            id: a.id,
            username: a.username,
            email: a.email,
            phone: a.phone,
            name: a.name,
            surname: a.surname,
            status: a.status.as_str(),
            created_at: rfc3339(a.created_at),
        }
    }
}

#[utoipa::path(get, path = "/api/admin/accounts", tag = "admin", operation_id = "list_accounts", responses((status = 200, description = "Accounts of the caller's organization", body = Vec<AccountBody>), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    Require(granted): Require<ManageAccounts>,
) -> Result<axum::Json<Vec<AccountBody>>, ApiError> {
    let accounts = state.core.list_accounts(&granted).await?;
    Ok(axum::Json(
        accounts.into_iter().map(AccountBody::from).collect(),
    ))
}

#[utoipa::path(get, path = "/api/admin/accounts/{id}", tag = "admin", operation_id = "get_account", params(("id" = String, Path)), responses((status = 200, description = "One account", body = AccountBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn one(
    State(state): State<AppState>,
    Require(granted): Require<ManageAccounts>,
    Id(id): Id,
) -> Result<axum::Json<AccountBody>, ApiError> {
    Ok(axum::Json(
        state.core.account_of_org(&granted, &id).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
struct ChangeBody {
    /// `user`, `moderator`, `admin`, `owner` (or `ROLE_ADMIN`-style); a one-element `roles`
    /// array is accepted too, as the login answer shows roles that way.
    role: Option<String>,
    roles: Option<Vec<String>>,
    /// `active` or `disabled`.
    status: Option<String>,
}

impl ChangeBody {
    fn parse(self) -> Result<AccountChange, ApiError> {
        let role = self
            .role
            .or_else(|| self.roles.and_then(|r| r.into_iter().next()));
        let mut f = Fields::new();
        let role = f.optional("role", role.as_deref(), parse_role);
        let status = f.optional("status", self.status.as_deref(), |s| {
            AccountStatus::parse(s.trim())
                .filter(|s| s.settable_by_admin())
                .ok_or(Problem::Format)
        });
        match (role, status) {
            (Some(role), Some(status)) => Ok(AccountChange { role, status }),
            _ => Err(invalid(f)),
        }
    }
}

#[utoipa::path(patch, path = "/api/admin/accounts/{id}", tag = "admin", operation_id = "change_account", params(("id" = String, Path)), request_body = ChangeBody,
    responses((status = 200, description = "Changed", body = AccountBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn change(
    State(state): State<AppState>,
    Require(granted): Require<ManageAccounts>,
    Id(id): Id,
    Json(body): Json<ChangeBody>,
) -> Result<axum::Json<AccountBody>, ApiError> {
    let change = body.parse()?;
    Ok(axum::Json(
        state
            .core
            .change_account(&granted, &id, change)
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/api/admin/accounts/{id}/mfa", tag = "admin", operation_id = "reset_account_mfa", params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Every second factor of the account removed and its sessions ended (`mfa.reset`)", body = super::MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, role too low, or one's own account", body = ErrorBody), (status = 404, description = "No such account in the organization", body = ErrorBody)),
    security(("access_token" = []), ("bearer" = [])))]
async fn reset_mfa(
    State(state): State<AppState>,
    Require(granted): Require<ManageAccounts>,
    Id(id): Id,
) -> Result<axum::Json<super::MessageBody>, ApiError> {
    state.core.reset_mfa(&granted, &id).await?;
    Ok(super::message(crate::i18n::Msg::MfaReset))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Unix milliseconds: only events older than this (the next page).
    before: Option<i64>,
    /// From 1 to 1000 (default 100).
    limit: Option<i64>,
    /// Only this action (`login`, `mfa.enabled`, ...).
    action: Option<String>,
    /// Only events done by this account (its id).
    actor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
struct AuditBody {
    id: String,
    actor: Option<String>,
    action: String,
    target: Option<String>,
    ip: Option<String>,
    at: String,
    at_ms: i64,
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", operation_id = "audit_trail", params(AuditQuery), responses((status = 200, description = "Newest first", body = Vec<AuditBody>), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn audit(
    State(state): State<AppState>,
    Require(granted): Require<ReadAudit>,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditBody>>, ApiError> {
    let filter = crate::store::AuditFilter {
        before: query.before,
        action: query.action.filter(|a| !a.is_empty()),
        actor: query.actor.filter(|a| !a.is_empty()),
    };
    let events = state
        .core
        .audit_trail(&granted, &filter, query.limit)
        .await?;
    Ok(axum::Json(
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
