//! What every request passes through on its way in and every answer on its way out, in one
//! service around the whole router: its request id, its access line (`served`, with status
//! and latency), the security headers and `Cache-Control: no-store`, an answer refused for a
//! full storage noted for `/readyz`, and a panic caught.
//!
//! These were eight tower layers (tower-http's request id, trace, catch-panic and four
//! set-header layers, and a response map), each with its own future, clone and header lookups;
//! with the per-route metrics they took about two thirds of a core serving `/healthz`
//! (issue 18). Then they were one layer on every route (axum's `Router::layer`), which boxes
//! each route once more and, on each request, clones every box inside the matched one again.
//! Now the edge wraps the router itself ([`Edge::new`]), with a future of a named type: no box,
//! no clone. What needs the matched route's template, its request count and time, is counted
//! inside the router, by each surface's layers (`layers::Tracked`).
//!
//! - The request id is the client's `X-Request-Id` when it sends a usable one, else a random
//!   UUID from the thread's generator (no system call per request), and is sent back. Lines
//!   logged while the request is served name it (a task-local, `telemetry::scope`).
//! - The access line is formatted only when the log level lets it through; with `RUST_LOG=warn`
//!   it is not.
//! - A panic anywhere below answers 500 in the Membership envelope and is logged; the node goes
//!   on. A handler's own panic is caught closer, where its route is counted.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio::task::futures::TaskLocalFuture;
use tower::Service;

use crate::core::Core;
use crate::i18n::{Lang, Msg};
use crate::telemetry::{self, RequestScope};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers an ordinary answer ends up with: its type and length, the edge's security headers,
/// `Cache-Control`, HSTS and the request id.
pub(super) const ANSWER_HEADERS: usize = 10;

/// The longest client-sent request id kept; a longer one is replaced by brama's own.
const MAX_CLIENT_ID: usize = 128;

/// brama's router with the edge around it: what each connection is served by
/// ([`Edge::connections`] makes one per connection).
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The connection's other end.
    peer: Option<SocketAddr>,
}

/// The headers every answer gets unless its handler set them itself, and what is told back to
/// the node when an answer was refused for a full storage.
struct Shared {
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Told of every answer refused for a full storage.
    core: Arc<Core>,
}

impl<S> Edge<S> {
    /// `inner` (the router) behind the edge; `https` adds HSTS; `core` is told of every answer
    /// marked [`super::StorageFullAnswer`].
    pub fn new(inner: S, https: bool, core: Arc<Core>) -> Self {
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
        Edge {
            inner,
            shared: Arc::new(Shared { headers, core }),
            peer: None,
        }
    }

    /// What `axum::serve` runs: the edge of each connection, which knows its peer's address.
    pub fn connections(self) -> Connections<S> {
        Connections { edge: self }
    }
}

/// Makes each connection's [`Edge`].
#[derive(Clone)]
pub struct Connections<S> {
    edge: Edge<S>,
}

impl<S: Clone> Service<IncomingStream<'_, TcpListener>> for Connections<S> {
    type Response = Edge<S>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Edge<S>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, connection: IncomingStream<'_, TcpListener>) -> Self::Future {
        let mut edge = self.edge.clone();
        edge.peer = Some(*connection.remote_addr());
        std::future::ready(Ok(edge))
    }
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = TaskLocalFuture<RequestScope, Answer<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(&request);
        let serving = RequestScope {
            id: id.clone(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            peer: self.peer,
        };
        // The router is always ready and its future owns what it needs: it is called in
        // place. Cloning it first (tower's habit for services that reserve capacity in
        // `poll_ready`) would cost an allocation a request.
        let answer = Answer {
            inner: self.inner.call(request),
            id: Some(id),
            started,
            shared: Arc::clone(&self.shared),
        };
        telemetry::scope(serving, answer)
    }
}

/// The router's answer to one request, finished by the edge (inside the request's scope, so
/// that its access line names the request).
pub struct Answer<F> {
    inner: F,
    /// Taken when the answer is finished.
    id: Option<HeaderValue>,
    started: Instant,
    shared: Arc<Shared>,
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is never moved out of the pinned `Answer` (structural pinning); the
        // other fields are not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let Poll::Ready(mut response) = answered(inner, cx) else {
            return Poll::Pending;
        };
        if response
            .extensions()
            .get::<super::StorageFullAnswer>()
            .is_some()
        {
            this.shared.core.storage_full_seen();
        }
        let headers = response.headers_mut();
        // Room for all of them at once: the map would otherwise grow (and rehash) on the way.
        headers.reserve(this.shared.headers.len() + 1);
        for (name, value) in &this.shared.headers {
            headers.entry(name).or_insert_with(|| value.clone());
        }
        if let Some(id) = this.id.take() {
            headers.insert(X_REQUEST_ID, id);
        }
        telemetry::served(
            response.status().as_u16(),
            this.started.elapsed().as_millis() as u64,
        );
        Poll::Ready(Ok(response))
    }
}

/// The request's id: the client's, when it is a usable one (below), else a new random UUID.
/// Only the answer and the log lines carry it; nothing inside reads it from the request.
fn request_id(request: &Request) -> HeaderValue {
    if let Some(id) = request.headers().get(&X_REQUEST_ID)
        && usable_client_id(id.as_bytes())
    {
        return id.clone();
    }
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(random_id_bytes())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text);
    // One allocation that the request's scope and the answer then share: a `HeaderValue`
    // copied from a string is a vector that its first clone (for the scope) turns into a
    // shared buffer, a second allocation (issue 18).
    HeaderValue::from_maybe_shared(axum::body::Bytes::from_owner(text))
        .unwrap_or(HeaderValue::from_static("-"))
}

thread_local! {
    /// The state of [`random_id_bytes`]'s generator on this thread.
    static ID_STATE: std::cell::Cell<u64> = std::cell::Cell::new(rand::random());
}

/// Sixteen random bytes for a request id, from a wyrand generator per thread seeded from the
/// operating system's randomness: an id must be unique, not secret (the client sees it and the
/// log holds it), and ChaCha's blocks, refilled every sixteen ids, and the thread generator's
/// bookkeeping cost more than the rest of the id (issue 18). Nothing secret is drawn from it.
fn random_id_bytes() -> [u8; 16] {
    ID_STATE.with(|state| {
        let half = || {
            let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
            state.set(s);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            ((t >> 64) as u64 ^ t as u64).to_le_bytes()
        };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&half());
        bytes[8..].copy_from_slice(&half());
        bytes
    })
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

/// Polls a route's `future`, whose panic is caught and answered 500 ([`panic_response`]); it
/// must not be polled again once ready.
pub(super) fn answered<F>(future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<Response<Body>>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(Poll::Ready(Ok(response))) => Poll::Ready(response),
        Ok(Poll::Ready(Err(never))) => match never {},
        Ok(Poll::Pending) => Poll::Pending,
        Err(_) => Poll::Ready(panic_response()),
    }
}

/// The answer to a request whose handler panicked.
fn panic_response() -> Response<Body> {
    tracing::error!("handler panicked");
    internal_error()
}

/// A 500 in the Membership envelope, for what went wrong outside any surface's rules.
pub(super) fn internal_error() -> Response<Body> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Request ids are version 4 UUIDs, none repeated, on one thread or across threads (each
    /// thread's generator is seeded on its own).
    #[test]
    fn request_ids_are_random_uuids_not_repeated() {
        let request = || Request::new(Body::empty());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = request_id(&request());
            let text = id.to_str().expect("ASCII");
            let uuid = uuid::Uuid::parse_str(text).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 4, "{text}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{text}");
            assert_eq!(text, uuid.hyphenated().to_string());
            assert!(seen.insert(text.to_string()), "{text} repeated");
        }
        let others: Vec<String> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    request_id(&request()).to_str().expect("ASCII").to_string()
                })
                .join()
                .expect("thread")
            })
            .collect();
        for id in others {
            assert!(seen.insert(id.clone()), "{id} repeated on another thread");
        }
    }
}
