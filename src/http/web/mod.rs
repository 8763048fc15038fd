//! Seed 000's page at `/`: plain HTML, CSS and JavaScript modules, all embedded in the binary,
//! nothing from another host (the CSP forbids it, and inline script too).

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;
use crate::http::membership::error::ApiError;

const INDEX: &str = include_str!("assets/index.html");

/// (name, content type, bytes) of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "texts.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/texts.js"),
    ),
    (
        "webauthn.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/webauthn.js"),
    ),
    (
        "validate.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/validate.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("assets/icon.svg")),
];

/// The page's routes, in Polish unless the browser asks otherwise, and `/assets/*` with its own
/// fallback so that a missing asset is refused in Polish too. Refusals (404, 405) are in the
/// Membership envelope, like anything else outside a surface.
pub fn routes() -> Router<AppState> {
    use crate::http::membership::error::{method_not_allowed, not_found};
    let assets = Router::new()
        .route("/{name}", get(asset))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    // The activation and reset links land on the same page, which reads their fragment.
    let routes = Router::new()
        .route("/", get(index))
        .route("/activate", get(index))
        .route("/reset", get(index))
        .route("/confirm-email", get(index))
        // OpenID Connect (SPEC §14): the login and the consent of another application's sign-in.
        .route("/sign-in", get(index))
        .route("/consent", get(index))
        .method_not_allowed_fallback(method_not_allowed)
        // The nested router answers `/assets` and what lies below, not the bare `/assets/`.
        .route("/assets/", axum::routing::any(not_found))
        .nest("/assets", assets);
    crate::http::language(crate::i18n::Lang::Pl, routes)
}

/// What an unknown address answers outside the API surfaces: a browser (asking for HTML with a
/// GET) gets the page with 404, which shows its own "no such page"; anything else the JSON
/// refusal.
pub async fn not_found_page(
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> Response {
    let html = method == axum::http::Method::GET
        && headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if html {
        (axum::http::StatusCode::NOT_FOUND, index().await).into_response()
    } else {
        crate::http::membership::error::not_found()
            .await
            .into_response()
    }
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(ApiError::not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CSP allows no inline script and no other host: the page must not need either.
    #[test]
    fn page_has_no_inline_script_or_foreign_urls() {
        let mut all = INDEX.to_string();
        for (_, _, body) in ASSETS {
            all.push_str(body);
        }
        // The SVG namespace is a name, not something loaded.
        let all = all.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !all.contains("http://") && !all.contains("https://") && !all.contains("//cdn"),
            "a foreign URL"
        );
        for (i, _) in INDEX.match_indices("<script") {
            let tag_end = INDEX[i..].find('>').map(|e| i + e).unwrap_or(INDEX.len());
            assert!(
                INDEX[i..tag_end].contains("src=\"/assets/"),
                "inline script at {i}"
            );
        }
        assert!(
            !INDEX.contains(" style=") && !INDEX.contains("<style") && !INDEX.contains(" onclick")
        );
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        for (_, _, body) in ASSETS {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let file = line
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(['"', ';', '\'']);
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == file),
                    "{file} is imported but not served"
                );
            }
        }
    }
}
