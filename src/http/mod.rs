//! The HTTP side: each surface is a nested router with its own fallback, body limits,
//! rejections, envelope and language; this module nests them and adds the layers every request
//! passes through.
//!
//! | path | surface | envelope | language |
//! |---|---|---|---|
//! | `/api/*` | Membership API (seed 001) | `{message, code}` | English |
//! | `/company/*`, `/web/*` | Company API (seed 002) | `{errorID, status, msg, info}` | Russian |
//! | `/`, `/activate`, `/reset`, `/assets/*` | the page (seed 000) | – | Polish |
//! | `/healthz`, `/readyz`, `/metrics`, `/.well-known/jwks.json`, `/openapi.json`, `/docs` | operations | – | English |
//!
//! Anything outside every surface answers 404 (and 405, 413) in the Membership envelope, the
//! one most clients speak.

pub mod company;
pub mod cookies;
pub mod edge;
pub mod extract;
mod json;
mod layers;
pub mod membership;
pub mod oauth2;
pub mod openapi;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::core::Core;
use crate::i18n::Lang;
use extract::Rejection;
use membership::error::ApiError;

/// Request bodies above this are refused with 413 (SPEC §7).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The rules; handlers only parse, call it and render.
    pub core: Arc<Core>,
}

tokio::task_local! {
    /// The language negotiated for the request being served.
    static LANG: Lang;
}

/// The request's language; English outside a request.
pub fn current_lang() -> Lang {
    LANG.try_with(|l| *l).unwrap_or(Lang::En)
}

/// A layer that serves a surface's requests in the language `Accept-Language` asks for, or in
/// the surface's own `default`.
fn language<S: Clone + Send + Sync + 'static>(default: Lang, router: Router<S>) -> Router<S> {
    router.layer(layers::LanguageLayer { default })
}

/// A surface's layers for the routes of `router` so far, and their fallbacks: requests are
/// served in the language `Accept-Language` asks for, or in `lang`; bodies read past `limit`
/// are refused, and so is a declared `Content-Length` over it before anything reads it, also
/// on routes that take no body. Refusals are in `E`'s envelope.
///
/// The route's request count and time are kept here too ([`layers::TrackedLayer`]): the
/// router has matched the request, so its route's template is known.
///
/// They are one `Router::layer`: axum boxes each route anew for every layer, and clones
/// every box inside the matched one once per level on each request, so three levels cost
/// eleven more allocations per request than one (issue 18). The edge, which every request
/// passes, is not a layer of the routes but a service around the router ([`edge::Edge`]).
fn surface_layers<E, S>(lang: Lang, limit: usize, router: Router<S>) -> Router<S>
where
    E: From<Rejection> + IntoResponse + 'static,
    S: Clone + Send + Sync + 'static,
{
    router.layer(
        tower::ServiceBuilder::new()
            .layer(layers::TrackedLayer)
            .layer(layers::LanguageLayer { default: lang })
            .layer(layers::DeclaredLimitLayer::<E>::new(limit)),
    )
}

/// Every surface's router, without state, and the document that describes all of them.
struct Surfaces {
    operations: Router<AppState>,
    membership: Router<AppState>,
    /// The Membership API's answer to an unknown path under `/api`.
    membership_unknown: Router<AppState>,
    company: Router<AppState>,
    web_api: Router<AppState>,
    document: utoipa::openapi::OpenApi,
}

fn surfaces() -> Surfaces {
    let (operations, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(jwks))
        .split_for_parts();
    let (membership, membership_unknown, membership_doc) = membership::surface();
    let (company, company_doc) = company::company_surface();
    let (web_api, web_api_doc) = company::web_surface();
    let document = document
        .merge_from(membership_doc)
        .nest("/company", company_doc)
        .nest("/web", web_api_doc);
    Surfaces {
        operations,
        membership,
        membership_unknown,
        company,
        web_api,
        document,
    }
}

/// The OpenAPI document `/openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    surfaces().document
}

/// brama's HTTP service: every surface's routes, behind the edge.
pub fn router(state: AppState) -> edge::Edge<Router> {
    let https = state.core.config.https();
    let cors_origins = state.core.config.cors_origins.clone();
    let Surfaces {
        operations,
        membership,
        membership_unknown,
        company,
        web_api,
        document,
    } = surfaces();
    // Served as the JSON it is: the document's own structures took 3 MiB of an idle
    // process's 4.5 MiB heap, its JSON 70 KiB (issue 18).
    let document = match serde_json::to_vec(&document) {
        Ok(json) => axum::body::Bytes::from(json),
        Err(e) => {
            tracing::error!(error = %e, "the API document could not be written as JSON");
            axum::body::Bytes::new()
        }
    };
    // Swagger UI from files inside the binary, reading the document from /openapi.json; its
    // pages alone may use inline styles.
    let docs = Router::from(
        SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")),
    )
    .method_not_allowed_fallback(membership::error::method_not_allowed)
    .layer(middleware::from_fn(docs_csp));
    let outside = operations
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            axum::http::HeaderValue::from_static("application/json"),
                        )],
                        document,
                    )
                }
            }),
        )
        .merge(web::routes())
        .merge(oauth2::routes())
        .merge(docs)
        .method_not_allowed_fallback(membership::error::method_not_allowed)
        .fallback(web::not_found_page);
    // Each surface negotiates its own language: one layer a request, not one per level.
    let outside = surface_layers::<ApiError, _>(Lang::En, BODY_LIMIT, outside);
    let mut router = outside
        .merge(membership)
        .nest("/api", membership_unknown)
        .nest("/company", company)
        .nest("/web", web_api)
        .merge(company::bare_prefixes())
        .with_state(state.clone());
    if let Some(cors) = cors_layer(&cors_origins) {
        router = router.layer(cors);
    }
    edge::Edge::new(router, https, state.core)
}

/// CORS stays off unless origins are configured; then exactly those origins may call with
/// credentials and the headers brama reads.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::ACCEPT_LANGUAGE,
                header::IF_MATCH,
                HeaderName::from_static("x-access-token"),
                HeaderName::from_static("refreshtoken"),
                HeaderName::from_static("sessionid"),
                HeaderName::from_static("x-csrf-token"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::LINK,
                HeaderName::from_static("x-total-count"),
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Swagger UI (served from the binary) sets inline styles; `/docs` alone may use them.
async fn docs_csp(request: Request, next: Next) -> axum::response::Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

/// An answer of JSON already written (into one buffer of the right size: axum's `Json` starts
/// at 128 bytes and grows by copying, which for `/me` was twice a request), with room for the
/// headers every answer gets (`edge::Edge`) from the start: a map made for one header grows,
/// and rehashes, when the edge adds its six (issue 18).
pub(crate) fn json_bytes(body: axum::body::Body) -> axum::response::Response {
    let mut response = axum::response::Response::new(body);
    let headers = response.headers_mut();
    *headers = axum::http::HeaderMap::with_capacity(edge::ANSWER_HEADERS);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Marks an answer refused because the storage is full (each surface's envelope sets it), so
/// that the node's `/readyz` can say so.
#[derive(Debug, Clone, Copy)]
pub struct StorageFullAnswer;

/// `/healthz`: the process answers.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// `/readyz`: whether the database answers.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
    /// Why it is unavailable: `database_unavailable` (the database does not answer) or
    /// `storage_full` (writes found the disk full or the database read-only within the last
    /// 30 s; reads still work).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz", responses((status = 200, description = "The process is up", body = Health)))]
async fn healthz() -> axum::response::Response {
    // Always the same answer: written once, not serialized per request (issue 18).
    json_bytes(axum::body::Body::from(HEALTHY))
}

/// `/healthz`'s body, a [`Health`] written as JSON.
const HEALTHY: &str = r#"{"status":"ok"}"#;

#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz", responses((status = 200, description = "The database answers", body = Readiness), (status = 503, description = "The database does not answer", body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    let readiness = state.core.readiness().await;
    let (status, word) = if readiness.ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = Readiness {
        status: word,
        database: readiness.backend,
        reason: readiness.reason,
    };
    (status, axum::Json(body)).into_response()
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", operation_id = "jwks", responses((status = 200, description = "Public keys that verify access tokens (RFC 7517)", body = crate::crypto::jwt::Jwks)))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let doc = state.core.keys.jwks();
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        axum::Json((*doc).clone()),
    )
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"), (status = 503, description = "No recorder", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    crate::telemetry::set_hash_queue_depth(state.core.hasher.queue_depth());
    match crate::telemetry::prometheus() {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_answer_is_its_schema_as_json() {
        let written = serde_json::to_string(&Health { status: "ok" }).expect("serializes");
        assert_eq!(HEALTHY, written);
    }
}
