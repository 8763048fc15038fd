//! The layers each surface puts around its routes, as plain tower services: the route's count
//! and time (and a handler's panic caught), the language a request is served in, and a
//! declared body size refused before anything reads the body.
//!
//! They were `axum::middleware::from_fn` layers, which per request clone the inner service
//! into a box and box two futures; with the route's metrics, that was about a tenth of a core
//! serving `/healthz` (issue 18). These call the inner service directly, and their futures are
//! named types.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Response, header};
use axum::response::IntoResponse;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::LANG;
use super::extract::Rejection;
use crate::i18n::Lang;
use crate::telemetry::Tracking;

/// Counts and times each request by its route's template, which the router has matched when
/// a route's layers run, and answers a handler's panic with a 500 (counted as such).
#[derive(Clone, Copy)]
pub struct TrackedLayer;

impl<S> Layer<S> for TrackedLayer {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
}

impl<S> Service<Request> for Tracked<S>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        TrackedFuture {
            tracking: Some(Tracking::start(&request)),
            inner: self.inner.call(request),
        }
    }
}

/// A route's answer, counted when it is ready. An answer never finished (the client went
/// away) is not counted.
pub struct TrackedFuture<F> {
    inner: F,
    tracking: Option<Tracking>,
}

impl<F> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is never moved out of the pinned future (structural pinning);
        // `tracking` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let Poll::Ready(response) = super::edge::answered(inner, cx) else {
            return Poll::Pending;
        };
        if let Some(tracking) = this.tracking.take() {
            tracking.finish(response.status());
        }
        Poll::Ready(Ok(response))
    }
}

/// Serves requests in the language their `Accept-Language` asks for, or in `default`.
#[derive(Clone, Copy)]
pub struct LanguageLayer {
    pub default: Lang,
}

impl<S> Layer<S> for LanguageLayer {
    type Service = Language<S>;

    fn layer(&self, inner: S) -> Language<S> {
        Language {
            inner,
            default: self.default,
        }
    }
}

#[derive(Clone)]
pub struct Language<S> {
    inner: S,
    default: Lang,
}

impl<S> Service<Request> for Language<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Lang, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let header = request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let lang = Lang::negotiate(header, self.default);
        // The handler's future is made here but runs (extractors, handler, rendering) when
        // polled, inside the scope.
        LANG.scope(lang, self.inner.call(request))
    }
}

/// Refuses a request whose declared `Content-Length` is over `limit`, in `E`'s envelope,
/// before anything reads its body; also on routes that take no body. A body read past `limit`
/// (one sent without a length) is refused by the extractor that reads it, which axum's
/// `DefaultBodyLimit` tells the limit.
pub struct DeclaredLimitLayer<E> {
    limit: u64,
    envelope: PhantomData<fn() -> E>,
}

impl<E> DeclaredLimitLayer<E> {
    pub fn new(limit: usize) -> Self {
        DeclaredLimitLayer {
            limit: limit as u64,
            envelope: PhantomData,
        }
    }
}

impl<E> Clone for DeclaredLimitLayer<E> {
    fn clone(&self) -> Self {
        DeclaredLimitLayer {
            limit: self.limit,
            envelope: PhantomData,
        }
    }
}

impl<S: Clone, E> Layer<S> for DeclaredLimitLayer<E> {
    type Service = DeclaredLimit<S, E>;

    fn layer(&self, inner: S) -> DeclaredLimit<S, E> {
        DeclaredLimit {
            limited: std::sync::Arc::new(
                DefaultBodyLimit::max(self.limit as usize).layer(inner.clone()),
            ),
            plain: inner,
            limit: self.limit,
            envelope: PhantomData,
        }
    }
}

/// The route, reached through axum's `DefaultBodyLimit` (which tells the body extractors the
/// limit in the request's extensions) when the request may have a body, and directly when its
/// body is known to be empty (a `GET`): the extension is an allocation, and its fourth entry
/// made the extensions' map grow, on every request (issue 18).
///
/// axum clones a route's whole stack of layers for each request, and here each copy of the
/// route is a box cloned anew: the limited copy is shared instead, and cloned only for a
/// request that goes through it, so a `GET` clones one box less.
pub struct DeclaredLimit<S, E> {
    plain: S,
    limited: std::sync::Arc<<DefaultBodyLimit as Layer<S>>::Service>,
    limit: u64,
    envelope: PhantomData<fn() -> E>,
}

impl<S: Clone, E> Clone for DeclaredLimit<S, E> {
    fn clone(&self) -> Self {
        DeclaredLimit {
            plain: self.plain.clone(),
            limited: std::sync::Arc::clone(&self.limited),
            limit: self.limit,
            envelope: PhantomData,
        }
    }
}

impl<S, E> Service<Request> for DeclaredLimit<S, E>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
    DefaultBodyLimit: Layer<S>,
    <DefaultBodyLimit as Layer<S>>::Service:
        Service<Request, Response = Response<Body>, Error = Infallible, Future = S::Future> + Clone,
    E: From<Rejection> + IntoResponse,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Refusable<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both reach the same route, which is always ready.
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit) {
            return Refusable::Refused(Some(E::from(Rejection::BodyTooLarge).into_response()));
        }
        if request.body().size_hint().upper() == Some(0) {
            Refusable::Inner(self.plain.call(request))
        } else {
            Refusable::Inner((*self.limited).clone().call(request))
        }
    }
}

/// The inner service's future, or an answer made without it.
pub enum Refusable<F> {
    Refused(Option<Response<Body>>),
    Inner(F),
}

impl<F> Future for Refusable<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: the inner future is never moved out of the pinned enum (structural pinning);
        // the refusal is an `Unpin` value taken out by `Option::take`.
        match unsafe { self.get_unchecked_mut() } {
            Refusable::Refused(answer) => Poll::Ready(Ok(answer
                .take()
                .unwrap_or_else(|| Response::new(Body::empty())))),
            Refusable::Inner(inner) => unsafe { Pin::new_unchecked(inner) }.poll(cx),
        }
    }
}
