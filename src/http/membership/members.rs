//! `/api/membership/members`: seed 001's member register routes, in its JSON shape (`_id`,
//! `__v`, the Polish field names), plus CSV export and import.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

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

/// Imports may be large spreadsheets (SPEC §7: 20 MiB).
pub const IMPORT_BODY_LIMIT: usize = 20 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/membership/members", get(list).post(create))
        .route("/api/membership/members/export.csv", get(export))
        .route(
            "/api/membership/members/import",
            post(import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route(
            "/api/membership/members/{id}",
            get(one).put(replace).patch(patch).delete(remove),
        )
}

/// A member as seed 001 shows it; PESEL always as an 11-character string.
#[derive(Serialize)]
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

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    wojewodztwo: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    page: Option<i64>,
    limit: Option<i64>,
}

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

#[derive(Deserialize)]
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

#[derive(Serialize)]
struct Imported {
    imported: usize,
}

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
