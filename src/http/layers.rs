//! The two layers each surface puts around its routes, as plain tower services: the language a
//! request is served in, and a declared body size refused before anything reads the body.
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

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Response, header};
use axum::response::IntoResponse;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::LANG;
use super::extract::Rejection;
use crate::i18n::Lang;

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
/// before anything reads its body; also on routes that take no body.
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

impl<S, E> Layer<S> for DeclaredLimitLayer<E> {
    type Service = DeclaredLimit<S, E>;

    fn layer(&self, inner: S) -> DeclaredLimit<S, E> {
        DeclaredLimit {
            inner,
            limit: self.limit,
            envelope: PhantomData,
        }
    }
}

pub struct DeclaredLimit<S, E> {
    inner: S,
    limit: u64,
    envelope: PhantomData<fn() -> E>,
}

impl<S: Clone, E> Clone for DeclaredLimit<S, E> {
    fn clone(&self) -> Self {
        DeclaredLimit {
            inner: self.inner.clone(),
            limit: self.limit,
            envelope: PhantomData,
        }
    }
}

impl<S, E> Service<Request> for DeclaredLimit<S, E>
where
    S: Service<Request, Response = Response<Body>, Error = Infallible>,
    E: From<Rejection> + IntoResponse,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Refusable<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
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
        Refusable::Inner(self.inner.call(request))
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
