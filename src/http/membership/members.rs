//! `/membership/members`: seed 001's member register routes, in its JSON shape (`_id`, `__v`,
//! the Polish field names), plus CSV export and import.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::State;

use crate::core::actor::{DeleteMembers, Granted, ManageMembers, TransferMembers};
use crate::core::members::{MAX_LIMIT, MemberListing};
use crate::core::members_csv::parse_separator;
use crate::core::{CoreError, MemberRecord, MemberSort};
use crate::domain::{
    FieldError, FieldInput, Fields, MemberForm, MemberPatch, NewMember, Pesel, Problem, SearchText,
    Voivodeship,
};
use crate::http::AppState;
use crate::i18n::Msg;

use super::error::{ApiError, ErrorBody};
use super::extract::{Id, Json, Query, Raw, Require};
use super::{MessageBody, message};

/// Imports may be large spreadsheets (SPEC §7: 20 MiB).
pub const IMPORT_BODY_LIMIT: usize = 20 * 1024 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(export))
        .routes(routes!(export_xlsx))
        .routes(routes!(one, replace, patch, remove))
        .routes(routes!(access_export))
}

/// The import, which has a body limit of its own.
pub fn import_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import))
}

/// A member as a client sends it (seed 001). PUT and POST need every field, PATCH some; a
/// field of the wrong type is reported with the others, not refused by the JSON reader.
#[derive(Deserialize, ToSchema)]
struct MemberInput {
    #[schema(value_type = Option<String>)]
    imie: Option<Value>,
    #[schema(value_type = Option<String>)]
    nazwisko: Option<Value>,
    #[schema(value_type = Option<String>)]
    wyksztalcenie: Option<Value>,
    /// Eleven digits, as a string or a number (leading zeros restored).
    #[schema(value_type = Option<String>, example = "44051401359")]
    pesel: Option<Value>,
    /// One of the 16 voivodeships, any case.
    #[schema(value_type = Option<String>)]
    wojewodztwo: Option<Value>,
    #[schema(value_type = Option<String>)]
    miejscowosc: Option<Value>,
    #[schema(value_type = Option<String>)]
    ulica: Option<Value>,
    #[schema(value_type = Option<String>)]
    nrdomulokalu: Option<Value>,
    #[schema(value_type = Option<String>, example = "00-950")]
    kodpocztowy: Option<Value>,
    #[schema(value_type = Option<String>)]
    email: Option<Value>,
    #[schema(value_type = Option<String>, example = "600-100-200")]
    tel: Option<Value>,
    /// The version the client last saw.
    #[serde(rename = "__v")]
    #[schema(value_type = Option<i64>)]
    version: Option<Value>,
}

/// A JSON value as a form field: `null` is a field left out.
fn field(value: Option<Value>) -> Option<FieldInput> {
    match value? {
        Value::Null => None,
        Value::String(s) => Some(FieldInput::Text(s)),
        Value::Number(n) => Some(
            match n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
            {
                Some(whole) => FieldInput::Integer(whole),
                None => FieldInput::Decimal(n.to_string()),
            },
        ),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => Some(FieldInput::Other),
    }
}

impl MemberInput {
    /// `__v`, as a number or a numeric string.
    fn version(&self) -> Result<Option<i64>, ApiError> {
        match &self.version {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(Some)
                .ok_or_else(|| {
                    CoreError::Validation(vec![FieldError {
                        field: "__v",
                        problem: Problem::Format,
                    }])
                    .into()
                }),
        }
    }

    fn form(self) -> MemberForm {
        MemberForm {
            imie: field(self.imie),
            nazwisko: field(self.nazwisko),
            wyksztalcenie: field(self.wyksztalcenie),
            pesel: field(self.pesel),
            wojewodztwo: field(self.wojewodztwo),
            miejscowosc: field(self.miejscowosc),
            ulica: field(self.ulica),
            nrdomulokalu: field(self.nrdomulokalu),
            kodpocztowy: field(self.kodpocztowy),
            email: field(self.email),
            tel: field(self.tel),
        }
    }
}

/// A member as seed 001 shows it; PESEL always as an 11-character string.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
    let mut response = (status, axum::Json(MemberBody::from(m))).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Text to find in imie, nazwisko, miejscowosc or email (case ignored).
    q: Option<String>,
    /// One of the 16 voivodeships.
    wojewodztwo: Option<String>,
    /// A whole PESEL: exactly the member that has it.
    pesel: Option<String>,
    /// `nazwisko` (default), `imie`, `miejscowosc`, `wojewodztwo` or `createdAt`.
    sort: Option<String>,
    /// `asc` (default) or `desc`.
    order: Option<String>,
    /// From 1.
    page: Option<i64>,
    /// From 1 to 1000.
    limit: Option<i64>,
}

impl ListQuery {
    /// Every problem of the query at once.
    fn listing(&self) -> Result<MemberListing, ApiError> {
        let mut f = Fields::new();
        let wojewodztwo = match self.wojewodztwo.as_deref().filter(|w| !w.trim().is_empty()) {
            None => None,
            Some(w) => f.check("wojewodztwo", Voivodeship::parse(w)),
        };
        let sort = match self.sort.as_deref().map(str::trim) {
            None | Some("") | Some("nazwisko") => MemberSort::Nazwisko,
            Some("imie") => MemberSort::Imie,
            Some("miejscowosc") => MemberSort::Miejscowosc,
            Some("wojewodztwo") => MemberSort::Wojewodztwo,
            Some("createdAt") | Some("created_at") => MemberSort::CreatedAt,
            Some(_) => {
                f.refuse("sort", Problem::Format);
                MemberSort::Nazwisko
            }
        };
        let descending = match self.order.as_deref().map(|o| o.trim().to_ascii_lowercase()) {
            None => false,
            Some(o) if o.is_empty() || o == "asc" => false,
            Some(o) if o == "desc" => true,
            Some(_) => {
                f.refuse("order", Problem::Format);
                false
            }
        };
        if self.page.is_some_and(|p| p < 1) {
            f.refuse("page", Problem::Format);
        }
        if self.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
            f.refuse("limit", Problem::Format);
        }
        let q = match &self.q {
            None => None,
            Some(q) => f.check("q", SearchText::parse(q)),
        };
        let pesel = match self
            .pesel
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            None => None,
            Some(p) => f.check("pesel", Pesel::parse(p)),
        };
        if !f.is_empty() {
            return Err(super::invalid(f));
        }
        Ok(MemberListing {
            q,
            wojewodztwo,
            pesel,
            sort,
            descending,
            page: self.page,
            limit: self.limit,
        })
    }
}

#[utoipa::path(get, path = "/api/membership/members", tag = "members", operation_id = "list_members", params(ListQuery),
    responses((status = 200, description = "Members; `X-Total-Count`, and `Link` when paged", body = Vec<MemberBody>,
        headers(("x-total-count" = i64, description = "Members matching the filter"), ("link" = String, description = "first, prev, next, last (RFC 8288)"))),
        (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    Require(granted): Require<ManageMembers>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let page = state.core.list_members(&granted, query.listing()?).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(page.total));
    let link = page
        .page
        .map(|current| link_header(&query, current, page.limit, page.total));
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LINK, link);
    }
    let body: Vec<MemberBody> = page.members.into_iter().map(MemberBody::from).collect();
    Ok((headers, axum::Json(body)).into_response())
}

/// RFC 8288 links to the first, previous, next and last pages, keeping the other parameters.
fn link_header(query: &ListQuery, page: i64, limit: i64, total: i64) -> String {
    let last = ((total + limit - 1) / limit).max(1);
    let url = |p: i64| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &query.q),
            ("wojewodztwo", &query.wojewodztwo),
            ("pesel", &query.pesel),
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

#[utoipa::path(get, path = "/api/membership/members/{id}", tag = "members", operation_id = "get_member", params(("id" = String, Path)),
    responses((status = 200, description = "The member; `ETag` holds `__v`", body = MemberBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn one(
    State(state): State<AppState>,
    Require(granted): Require<ManageMembers>,
    Id(id): Id,
) -> Result<Response, ApiError> {
    Ok(member_response(
        StatusCode::OK,
        state.core.member(&granted, &id).await?,
    ))
}

/// One event of a member's audit trail.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AccessEntry {
    /// When (RFC 3339).
    at: String,
    /// Who: the account's username (or email); `null` for the command line or an account since
    /// deleted.
    actor: Option<String>,
    /// What, e.g. `member_created`, `member.pesel_read`.
    action: String,
}

/// What brama holds about one member, for its right of access (GDPR Art. 15).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MemberAccessExport {
    member: MemberBody,
    /// Every audit event about the member, oldest first.
    #[serde(rename = "accessLog")]
    access_log: Vec<AccessEntry>,
}

#[utoipa::path(get, path = "/api/membership/members/{id}/export", tag = "members", operation_id = "export_member_data", params(("id" = String, Path)),
    responses((status = 200, description = "The member's data and every audit event about it (admins); audited as `member.rodo_export`", body = MemberAccessExport), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn access_export(
    State(state): State<AppState>,
    Require(granted): Require<TransferMembers>,
    Id(id): Id,
) -> Result<Response, ApiError> {
    let (member, trail) = state.core.member_access_export(&granted, &id).await?;
    let body = MemberAccessExport {
        member: MemberBody::from(member),
        access_log: trail
            .into_iter()
            .map(|e| AccessEntry {
                at: crate::core::rfc3339(e.created_at),
                actor: e.actor,
                action: e.action,
            })
            .collect(),
    };
    Ok(axum::Json(body).into_response())
}

#[utoipa::path(post, path = "/api/membership/members", tag = "members", operation_id = "create_member", request_body = MemberInput,
    responses((status = 201, description = "Created with `__v: 0`", body = MemberBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    Require(granted): Require<ManageMembers>,
    Json(input): Json<MemberInput>,
) -> Result<Response, ApiError> {
    let member = NewMember::parse(input.form()).map_err(CoreError::Validation)?;
    Ok(member_response(
        StatusCode::CREATED,
        state.core.create_member(&granted, member).await?,
    ))
}

/// The patch, or its field errors; but a member that is not there (or is another
/// organization's) is "not found" before anything sent for it is judged.
async fn refuse_fields_of_a_known_member(
    state: &AppState,
    granted: &Granted<ManageMembers>,
    id: &str,
    parsed: Result<MemberPatch, Vec<FieldError>>,
) -> Result<MemberPatch, ApiError> {
    match parsed {
        Ok(patch) => Ok(patch),
        Err(errors) => {
            state.core.member(granted, id).await?;
            Err(CoreError::Validation(errors).into())
        }
    }
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
        CoreError::Validation(vec![FieldError {
            field: "If-Match",
            problem: Problem::Format,
        }])
        .into()
    })
}

#[utoipa::path(put, path = "/api/membership/members/{id}", tag = "members", operation_id = "replace_member", request_body = MemberInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The version, as `\"3\"`")),
    responses((status = 200, description = "Replaced; `__v` + 1", body = MemberBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody), (status = 409, description = "Stale `__v` or `If-Match`; nothing changed", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn replace(
    State(state): State<AppState>,
    Require(granted): Require<ManageMembers>,
    headers: HeaderMap,
    Id(id): Id,
    Json(input): Json<MemberInput>,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let expected = input.version()?.or(if_match);
    let parsed = NewMember::parse(input.form()).map(NewMember::into_patch);
    let patch = refuse_fields_of_a_known_member(&state, &granted, &id, parsed).await?;
    let updated = state
        .core
        .update_member(&granted, &id, patch, expected)
        .await?;
    Ok(member_response(StatusCode::OK, updated))
}

#[utoipa::path(patch, path = "/api/membership/members/{id}", tag = "members", operation_id = "patch_member", request_body = MemberInput,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The version, as `\"3\"`")),
    responses((status = 200, description = "Changed; `__v` + 1", body = MemberBody), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody), (status = 409, description = "Stale `__v` or `If-Match`; nothing changed", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn patch(
    State(state): State<AppState>,
    Require(granted): Require<ManageMembers>,
    headers: HeaderMap,
    Id(id): Id,
    Json(input): Json<MemberInput>,
) -> Result<Response, ApiError> {
    let if_match = if_match(&headers)?;
    let expected = input.version()?.or(if_match);
    let parsed = MemberPatch::parse(input.form());
    let patch = refuse_fields_of_a_known_member(&state, &granted, &id, parsed).await?;
    let updated = state
        .core
        .update_member(&granted, &id, patch, expected)
        .await?;
    Ok(member_response(StatusCode::OK, updated))
}

#[utoipa::path(delete, path = "/api/membership/members/{id}", tag = "members", operation_id = "delete_member", params(("id" = String, Path)),
    responses((status = 200, description = "Deleted", body = MessageBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody), (status = 404, description = "Member not found (also another organization's)", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    Require(granted): Require<DeleteMembers>,
    Id(id): Id,
) -> Result<Response, ApiError> {
    state.core.delete_member(&granted, &id).await?;
    Ok(message(Msg::MemberDeleted).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CsvQuery {
    /// `;` (default), `,`, `tab` or `|`.
    sep: Option<String>,
}

impl CsvQuery {
    fn separator(&self) -> Result<Option<u8>, ApiError> {
        match self.sep.as_deref() {
            None => Ok(None),
            Some(s) => parse_separator(s).map(Some).ok_or_else(|| {
                CoreError::Validation(vec![FieldError {
                    field: "sep",
                    problem: Problem::Format,
                }])
                .into()
            }),
        }
    }
}

#[utoipa::path(get, path = "/api/membership/members/export.csv", tag = "members", operation_id = "export_members", params(CsvQuery),
    responses((status = 200, description = "UTF-8 CSV with a BOM", body = String, content_type = "text/csv"), (status = 400, description = "Invalid input, every problem named", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    Require(granted): Require<TransferMembers>,
    Query(query): Query<CsvQuery>,
) -> Result<Response, ApiError> {
    let sep = query.separator()?.unwrap_or(b';');
    let csv = state.core.export_members_csv(&granted, sep).await?;
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

/// The `.xlsx` workbook's media type.
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[utoipa::path(get, path = "/api/membership/members/export.xlsx", tag = "members", operation_id = "export_members_xlsx",
    responses((status = 200, description = "An Excel workbook: one sheet, Polish headers, every cell text (PESEL, postcode and phone keep their leading zeros), frozen header row with an autofilter; audited as `member.export`", body = Vec<u8>, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn export_xlsx(
    State(state): State<AppState>,
    Require(granted): Require<TransferMembers>,
) -> Result<Response, ApiError> {
    let book = state.core.export_members_xlsx(&granted).await?;
    Ok((
        [
            (header::CONTENT_TYPE, XLSX),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"members.xlsx\"",
            ),
        ],
        book,
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Imported {
    imported: usize,
}

#[utoipa::path(post, path = "/api/membership/members/import", tag = "members", operation_id = "import_members", params(CsvQuery),
    request_body(content = String, content_type = "text/csv", description = "A header line and one member per line; at most 20 MiB"),
    responses((status = 200, description = "Every row imported", body = Imported),
        (status = 400, description = "Nothing imported; each bad line and field listed", body = ErrorBody), (status = 401, description = "Expired, invalid or revoked access token", body = ErrorBody), (status = 403, description = "No token, CSRF refused, or role too low", body = ErrorBody),
        (status = 413, description = "Over 20 MiB", body = ErrorBody)), security(("access_token" = []), ("bearer" = [])))]
async fn import(
    State(state): State<AppState>,
    Require(granted): Require<TransferMembers>,
    Query(query): Query<CsvQuery>,
    Raw(body): Raw,
) -> Result<axum::Json<Imported>, ApiError> {
    let sep = query.separator()?;
    let imported = state
        .core
        .import_members_csv(&granted, &body, sep, &|_, _| {})
        .await?;
    Ok(axum::Json(Imported { imported }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Pesel;

    fn pesel_of(json: &str) -> Result<String, Problem> {
        let body: Value = serde_json::from_str(json).expect("json");
        let input = field(body.get("pesel").cloned()).ok_or(Problem::Required)?;
        Pesel::from_input(&input).map(|p| p.as_str().to_string())
    }

    /// A PESEL read from JSON text, as a request body brings it.
    #[test]
    fn a_pesel_may_come_as_a_json_string_or_number() {
        assert_eq!(
            pesel_of(r#"{"pesel": "44051401359"}"#),
            Ok("44051401359".into())
        );
        assert_eq!(
            pesel_of(r#"{"pesel": 2270803624}"#),
            Ok("02270803624".into())
        );
        assert_eq!(pesel_of(r#"{"pesel": -1}"#), Err(Problem::Format));
        assert_eq!(
            pesel_of(r#"{"pesel": 44051401359.0}"#),
            Err(Problem::Format)
        );
        assert_eq!(
            pesel_of(r#"{"pesel": 4.4051401359e10}"#),
            Err(Problem::Format)
        );
        assert_eq!(
            pesel_of(r#"{"pesel": 18446744073709551615}"#),
            Err(Problem::Length { min: 11, max: 11 })
        );
        assert_eq!(pesel_of(r#"{"pesel": true}"#), Err(Problem::Format));
        assert_eq!(
            pesel_of(r#"{"pesel": ["44051401359"]}"#),
            Err(Problem::Format)
        );
        assert_eq!(
            pesel_of(r#"{"pesel": {"pesel": "44051401359"}}"#),
            Err(Problem::Format)
        );
        assert_eq!(pesel_of(r#"{"pesel": null}"#), Err(Problem::Required));
    }

    #[test]
    fn json_values_become_form_fields() {
        assert_eq!(field(None), None);
        assert_eq!(field(Some(Value::Null)), None);
        assert_eq!(
            field(Some(serde_json::json!("x"))),
            Some(FieldInput::Text("x".into()))
        );
        assert_eq!(
            field(Some(serde_json::json!(-5))),
            Some(FieldInput::Integer(-5))
        );
        assert_eq!(
            field(Some(serde_json::json!(600100200.5))),
            Some(FieldInput::Decimal("600100200.5".into()))
        );
        assert_eq!(
            field(Some(serde_json::json!(false))),
            Some(FieldInput::Other)
        );
    }
}
