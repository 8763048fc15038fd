//! The shared extractors in this surface's envelope, and the role guard of its routes.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;

use crate::core::actor::{Granted, Permission};
use crate::core::{Actor, Caller, Client};
use crate::http::AppState;
use crate::http::extract::{
    Authenticated, JsonBody, OptionalJsonBody, PathParam, QueryParams, RawBody,
};

use super::error::ApiError;

/// A JSON object body.
#[derive(FromRequest)]
#[from_request(via(JsonBody), rejection(ApiError))]
pub struct Json<T>(pub T);

/// A JSON object body that may be empty.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(OptionalJson(
            OptionalJsonBody::from_request(req, state).await?.0,
        ))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(QueryParams), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The one path parameter of a route (`{id}`).
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(Id(PathParam::from_request_parts(parts, state).await?.0))
    }
}

/// A raw body (CSV).
pub struct Raw(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Raw {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(Raw(RawBody::from_request(req, state).await?.0))
    }
}

/// An authenticated account (SPEC §4: header token or the browser's cookie).
pub struct AuthUser {
    pub caller: Caller,
    pub client: Client,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated { caller, client } =
            Authenticated::from_request_parts(parts, state).await?;
        Ok(AuthUser { caller, client })
    }
}

/// An authenticated account that holds permission `P`; the core decides which role that takes.
pub struct Require<P: Permission>(pub Granted<P>);

impl<P: Permission> FromRequestParts<AppState> for Require<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        Ok(Require(Actor::account(&user.caller, &user.client).grant()?))
    }
}
