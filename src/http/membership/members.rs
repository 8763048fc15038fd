//! `/api/membership/members`: seed 001's member register routes, in its JSON shape (`_id`,
//! `__v`, the Polish field names), plus CSV export and import.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::core::Client;
use crate::core::members::{Actor, MemberDraft, MemberQuery};
use crate::core::members_csv::parse_separator;
use crate::domain::{FieldError, Problem};
use crate::http::AppState;
use crate::http::extract::{AppJson, AppPath, AppQuery, AuthUser, ClientInfo};
use crate::i18n::Msg;
use crate::store::MemberRecord;

use super::error::ApiError;
use super::message;
use crate::http::openapi::{ErrorBody, MessageBody};

/// Imports may be large spreadsheets (SPEC §7: 20 MiB).
pub const IMPORT_BODY_LIMIT: usize = 20 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(export))
        .routes(routes!(import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)))
        .routes(routes!(one, replace, patch, remove))
}

/// A member as a client sends it (seed 001). PUT needs every field, PATCH some; `pesel` may be a
/// string or a number; `__v` is the version the client last saw.
#[derive(ToSchema)]
#[allow(dead_code)]
struct MemberInput {
    imie: String,
    nazwisko: String,
    wyksztalcenie: String,
    #[schema(value_type = String, example = "44051401359")]
    pesel: String,
    /// One of the 16 voivodeships, any case.
    wojewodztwo: String,
    miejscowosc: String,
    ulica: String,
    nrdomulokalu: String,
    #[schema(example = "00-950")]
    kodpocztowy: String,
    email: String,
    #[schema(example = "600-100-200")]
    tel: String,
    #[schema(rename = "__v")]
    version: Option<i64>,
}

/// A member as seed 001 shows it; PESEL always as an 11-character string.
#[derive(Serialize, ToSchema)]
pub struct MemberBody {
    #[serde(rename = "_id")]
    id: String,
    imie: String,
    nazwisko: String,
    wyksztalcenie: String,
    pesel: String,
    wojewodztwo: String,
    miejscowosc: String,
    ulica: String,
    nrdomulokalu: String,
    kodpocztowy: String,
    email: String,
    tel: String,
    #[serde(rename = "__v")]
    version: i64,
}

impl From<MemberRecord> for MemberBody {
    fn from(m: MemberRecord) -> Self {
        MemberBody {
            id: m.id,
            imie: m.imie,
            nazwisko: m.nazwisko,
            wyksztalcenie: m.wyksztalcenie,
            pesel: m.pesel,
            wojewodztwo: m.wojewodztwo,
            miejscowosc: m.miejscowosc,
            ulica: m.ulica,
            nrdomulokalu: m.nrdomulokalu,
            kodpocztowy: m.kodpocztowy,
            email: m.email,
            tel: m.tel,
            version: m.version,
        }
    }
}

/// A member with its version as an `ETag`, for `If-Match`.
fn member_response(status: StatusCode, m: MemberRecord) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", m.version)).ok();
    let mut response = (status, Json(MemberBody::from(m))).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[derive(Deserialize, IntoParams)]
struct ListQuery {
    q: Option<String>,
    wojewodztwo: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/membership/members", tag = "members", params(ListQuery),
    responses((status = 200, description = "Members; `X-Total-Count`, and `Link` when paged", body = Vec<MemberBody>,
        headers(("x-total-count" = i64, description = "Members matching the filter"), ("link" = String, description = "first, prev, next, last (RFC 8288)"))),
        (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let actor = Actor::from_claims(&user.claims, client.ip);
    let request = MemberQuery {
        q: query.q.clone(),
        wojewodztwo: query.wojewodztwo.clone(),
        sort: query.sort.clone(),
        order: query.order.clone(),
        page: query.page,
        limit: query.limit,
    };
    let page = state.core.list_members(&actor, &request).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(page.total));
    let link = page
        .page
        .map(|current| link_header(&query, current, page.limit, page.total));
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LINK, link);
    }
    let body: Vec<MemberBody> = page.members.into_iter().map(MemberBody::from).collect();
    Ok((headers, Json(body)).into_response())
}

/// RFC 8288 links to the first, previous, next and last pages, keeping the other parameters.
fn link_header(query: &ListQuery, page: i64, limit: i64, total: i64) -> String {
    let last = ((total + limit - 1) / limit).max(1);
    let url = |p: i64| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &query.q),
            ("wojewodztwo", &query.wojewodztwo),
            ("sort", &query.sort),
            ("order", &query.order),
        ] {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        s.append_pair("page", &p.to_string());
        s.append_pair("limit", &limit.to_string());
        format!("</api/membership/members?{}>", s.finish())
    };
    let mut links = vec![format!("{}; rel=\"first\"", url(1))];
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url((page - 1).min(last))));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
    }
    links.push(format!("{}; rel=\"last\"", url(last)));
    links.join(", ")
}

#[utoipa::path(get, path = "/api/membership/members/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 200, description = "The member; `ETag` holds `__v`", body = MemberBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn one(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppPath(id): AppPath,
) -> Result<Response, ApiError> {
    let actor = Actor::from_claims(&user.claims, client.ip);
    Ok(member_response(
        StatusCode::OK,
        state.core.member(&actor, &id).await?,
    ))
}

#[utoipa::path(post, path = "/api/membership/members", tag = "members", request_body = MemberInput,
    responses((status = 201, description = "Created with `__v: 0`", body = MemberBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppJson(draft): AppJson<MemberDraft>,
) -> Result<Response, ApiError> {
    let actor = Actor::from_claims(&user.claims, client.ip);
    Ok(member_response(
        StatusCode::CREATED,
        state.core.create_member(&actor, &draft).await?,
    ))
}

/// `If-Match: "3"` (or `W/"3"`, or a bare 3); `*` means any version.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<i64>().map(Some).map_err(|_| {
        crate::core::CoreError::Validation(vec![FieldError {
            field: "If-Match",
            problem: Problem::Format,
        }])
        .into()
    })
}

/// PUT replaces every field, PATCH the ones given; both check the version.
async fn update(
    state: AppState,
    client: Client,
    user: AuthUser,
    headers: HeaderMap,
    id: String,
    draft: MemberDraft,
    partial: bool,
) -> Result<Response, ApiError> {
    let actor = Actor::from_claims(&user.claims, client.ip);
    let version = if_match(&headers)?;
    let member = state
        .core
        .update_member(&actor, &id, &draft, version, partial)
        .await?;
    Ok(member_response(StatusCode::OK, member))
}

#[utoipa::path(put, path = "/api/membership/members/{id}", tag = "members", request_body = MemberInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The version, as `\"3\"`")),
    responses((status = 200, description = "Replaced; `__v` + 1", body = MemberBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody), (status = 409, description = "Stale `__v` or `If-Match`; nothing changed", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn replace(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    headers: HeaderMap,
    AppPath(id): AppPath,
    AppJson(draft): AppJson<MemberDraft>,
) -> Result<Response, ApiError> {
    update(state, client, user, headers, id, draft, false).await
}

#[utoipa::path(patch, path = "/api/membership/members/{id}", tag = "members", request_body = MemberInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The version, as `\"3\"`")),
    responses((status = 200, description = "Changed; `__v` + 1", body = MemberBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody), (status = 409, description = "Stale `__v` or `If-Match`; nothing changed", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn patch(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    headers: HeaderMap,
    AppPath(id): AppPath,
    AppJson(draft): AppJson<MemberDraft>,
) -> Result<Response, ApiError> {
    update(state, client, user, headers, id, draft, true).await
}

#[utoipa::path(delete, path = "/api/membership/members/{id}", tag = "members", params(("id" = String, Path)),
    responses((status = 200, description = "Deleted", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppPath(id): AppPath,
) -> Result<Response, ApiError> {
    let actor = Actor::from_claims(&user.claims, client.ip);
    state.core.delete_member(&actor, &id).await?;
    Ok(message(Msg::MemberDeleted).into_response())
}

#[derive(Deserialize, IntoParams)]
struct CsvQuery {
    sep: Option<String>,
}

fn separator(query: &CsvQuery) -> Result<Option<u8>, ApiError> {
    match query.sep.as_deref() {
        None => Ok(None),
        Some(s) => parse_separator(s).map(Some).ok_or_else(|| {
            crate::core::CoreError::Validation(vec![FieldError {
                field: "sep",
                problem: Problem::Format,
            }])
            .into()
        }),
    }
}

#[utoipa::path(get, path = "/api/membership/members/export.csv", tag = "members", params(CsvQuery),
    responses((status = 200, description = "UTF-8 CSV with a BOM", body = String, content_type = "text/csv"), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppQuery(query): AppQuery<CsvQuery>,
) -> Result<Response, ApiError> {
    let actor = Actor::from_claims(&user.claims, client.ip);
    let sep = separator(&query)?.unwrap_or(b';');
    let csv = state.core.export_members_csv(&actor, sep).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"members.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
struct Imported {
    imported: usize,
}

#[utoipa::path(post, path = "/api/membership/members/import", tag = "members", params(CsvQuery),
    request_body(content = String, content_type = "text/csv", description = "A header line and one member per line; at most 20 MiB"),
    responses((status = 200, description = "Every row imported", body = Imported),
        (status = 400, description = "Nothing imported; each bad line and field listed", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody),
        (status = 413, description = "Over 20 MiB", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn import(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    user: AuthUser,
    AppQuery(query): AppQuery<CsvQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Imported>, ApiError> {
    let actor = Actor::from_claims(&user.claims, client.ip);
    let sep = separator(&query)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                Msg::BodyTooLarge,
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", Msg::InvalidJson)
        }
    })?;
    let imported = state
        .core
        .import_members_csv(&actor, &body, sep, &|_, _| {})
        .await?;
    Ok(Json(Imported { imported }))
}
