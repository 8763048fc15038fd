//! The HTTP side: one router for every surface, and the layers every request passes through.

pub mod company;
pub mod extract;
pub mod membership;
pub mod openapi;
pub mod web;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::core::Core;
use crate::i18n::{Lang, Msg};
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

/// Each surface has its own default language: Russian for the Company API (seed 002), Polish
/// for the page (seed 000), English for the rest.
async fn negotiate_language(request: Request, next: Next) -> axum::response::Response {
    let path = request.uri().path();
    let default = if company::is_company_path(path) {
        Lang::Ru
    } else if path == "/" || path.starts_with("/assets/") || path == "/activate" || path == "/reset"
    {
        Lang::Pl
    } else {
        Lang::En
    };
    let lang = Lang::negotiate(request.headers(), default);
    LANG.scope(lang, next.run(request)).await
}

pub fn router(state: AppState) -> Router {
    let https = state.core.config.https();
    let cors_origins = state.core.config.cors_origins.clone();
    let x_request_id = HeaderName::from_static("x-request-id");
    let (api_routes, api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(jwks))
        .merge(membership::routes())
        .merge(company::routes())
        .split_for_parts();
    let mut router = api_routes
        .merge(web::routes())
        // Swagger UI from files inside the binary; it serves /openapi.json too.
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(refuse_declared_oversize))
        .layer(middleware::from_fn(negotiate_language))
        .layer(middleware::from_fn(crate::telemetry::track))
        .layer(middleware::map_response(no_store_for_api))
        .layer(middleware::from_fn(docs_csp));
    router = security_headers(router, https);
    if let Some(cors) = cors_layer(&cors_origins) {
        router = router.layer(cors);
    }
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    // The path only: query strings can carry tokens.
                    tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path())
                })
                .on_request(())
                .on_response(|response: &Response<Body>, latency: Duration, _span: &Span| {
                    tracing::info!(status = response.status().as_u16(), latency_ms = latency.as_millis() as u64, "served");
                })
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}

fn security_headers(router: Router, https: bool) -> Router {
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    let router = router
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"));
    if https {
        router.layer(set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        router
    }
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

/// A body whose declared length is over the route's limit is refused before anything reads it,
/// also on routes that take no body (the extractors catch undeclared, chunked ones).
async fn refuse_declared_oversize(request: Request, next: Next) -> axum::response::Response {
    let limit = if request.uri().path() == "/api/membership/members/import" {
        membership::members::IMPORT_BODY_LIMIT
    } else {
        BODY_LIMIT
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let error = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            Msg::BodyTooLarge,
        );
        return if company::is_company_path(request.uri().path()) {
            company::error::CompanyError::from(error).into_response()
        } else {
            error.into_response()
        };
    }
    next.run(request).await
}

/// Swagger UI (served from the binary) sets inline styles; `/docs` alone may use them.
async fn docs_csp(request: Request, next: Next) -> axum::response::Response {
    let docs = request.uri().path().starts_with("/docs");
    let mut response = next.run(request).await;
    if docs {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            ),
        );
    }
    response
}

/// API answers hold tokens and personal data: no cache may keep them.
async fn no_store_for_api(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    let body = serde_json::json!({ "message": Msg::Internal.text(Lang::En), "code": "internal" });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Unknown routes answer in the envelope of the surface whose path they are under.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if company::is_company_path(uri.path()) {
        company::not_found().await.into_response()
    } else {
        ApiError::not_found().into_response()
    }
}

async fn method_not_allowed(uri: axum::http::Uri) -> axum::response::Response {
    if company::is_company_path(uri.path()) {
        company::method_not_allowed().await.into_response()
    } else {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            Msg::MethodNotAllowed,
        )
        .into_response()
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is up", body = Object)))]
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "The database answers", body = Object), (status = 503, description = "The database does not answer", body = Object)))]
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    match state.core.store.ping().await {
        Ok(()) => axum::Json(
            serde_json::json!({ "status": "ready", "database": state.core.store.backend() }),
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "status": "unavailable", "database": state.core.store.backend() })),
            )
                .into_response()
        }
    }
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", responses((status = 200, description = "Public keys that verify access tokens (RFC 7517)", body = Object)))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let doc = state.core.keys.jwks();
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        axum::Json((*doc).clone()),
    )
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"), (status = 503, description = "No recorder", body = String, content_type = "text/plain")))]
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
