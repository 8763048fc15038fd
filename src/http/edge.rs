//! What every request passes through on its way in and every answer on its way out, in one
//! layer: its request id, its span and access line, a handler's panic caught, the security
//! headers and `Cache-Control: no-store`, and an answer refused for a full storage noted for
//! `/readyz`.
//!
//! These were eight tower layers (tower-http's request id, trace, catch-panic and four
//! set-header layers, and a response map), each with its own future, clone and header lookups;
//! with the per-route metrics below they took about two thirds of a core serving `/healthz`
//! (issue 18). Here they are one future, with every header value made once at start-up:
//!
//! - The request id is the client's `X-Request-Id` when it sends a usable one, else a random
//!   UUID from the thread's generator (no system call per request), and is sent back.
//! - The span and the access line (`served`, with status and latency) are made only when the
//!   log level lets them through; with `RUST_LOG=warn` neither is formatted.
//! - A panicking handler answers 500 in the Membership envelope and is logged; the node goes on.
//! - The route's request count and time are recorded ([`Tracking`]): the layer sits on each
//!   route (axum's `Router::layer`), after the router matched it, so the route's template is
//!   known here.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use tower::{Layer, Service};

use crate::core::Core;
use crate::i18n::{Lang, Msg};
use crate::telemetry::{self, RequestScope, Tracking};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent request id kept; a longer one is replaced by brama's own.
const MAX_CLIENT_ID: usize = 128;

/// The headers every answer gets unless its handler set them itself, and what is told back to
/// the node when an answer was refused for a full storage.
#[derive(Clone)]
pub struct EdgeLayer {
    shared: Arc<Shared>,
}

struct Shared {
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Told of every answer refused for a full storage.
    core: Arc<Core>,
}

impl EdgeLayer {
    /// `https` adds HSTS; `core` is told of every answer marked [`super::StorageFullAnswer`].
    pub fn new(https: bool, core: Arc<Core>) -> Self {
        let mut headers = vec![
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // API answers hold tokens and personal data: no cache may keep them.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        if https {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000; includeSubDomains"),
            ));
        }
        EdgeLayer {
            shared: Arc::new(Shared { headers, core }),
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response<Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let tracking = Tracking::start(&request);
        let id = request_id(&mut request);
        let serving = RequestScope {
            id: id.clone(),
            method: request.method().clone(),
            uri: request.uri().clone(),
        };
        // The inner service is axum's route, always ready, whose future owns what it needs:
        // it is called in place. Cloning it first (tower's habit for services that reserve
        // capacity in `poll_ready`) cloned every box inside the route on each request.
        let handled = CatchPanic {
            inner: self.inner.call(request),
        };
        let shared = Arc::clone(&self.shared);
        Box::pin(telemetry::scope(serving, async move {
            let mut response = match handled.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(()) => panic_response(),
            };
            if response
                .extensions()
                .get::<super::StorageFullAnswer>()
                .is_some()
            {
                shared.core.storage_full_seen();
            }
            let headers = response.headers_mut();
            for (name, value) in &shared.headers {
                headers.entry(name).or_insert_with(|| value.clone());
            }
            headers.insert(X_REQUEST_ID, id);
            let elapsed = tracking.finish(response.status());
            telemetry::served(response.status().as_u16(), elapsed.as_millis() as u64);
            Ok(response)
        }))
    }
}

/// The request's id: the client's, when it is a usable one (below), else a new random UUID,
/// which is also set on the request for whatever reads it further in.
fn request_id(request: &mut Request) -> HeaderValue {
    if let Some(id) = request.headers().get(&X_REQUEST_ID)
        && usable_client_id(id.as_bytes())
    {
        return id.clone();
    }
    let mut buffer = uuid::Uuid::encode_buffer();
    let text = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buffer);
    let id = HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"));
    request.headers_mut().insert(X_REQUEST_ID, id.clone());
    id
}

/// A client's id is kept when it is 1 to [`MAX_CLIENT_ID`] letters, digits and `-_.:/+=@`: a
/// UUID, a trace id, a proxy's id. Anything else (spaces, quotes, braces) could make the text
/// access line read as if it had other fields (`x method=POST path=/admin`), so it is replaced.
fn usable_client_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

/// A future whose panic is caught and returned as `Err(())`.
struct CatchPanic<F> {
    inner: F,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is never moved out of the pinned `CatchPanic` (structural pinning).
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

fn panic_response() -> Response<Body> {
    tracing::error!("handler panicked");
    let body = serde_json::json!({ "message": Msg::Internal.text(Lang::En), "code": "internal" });
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}
