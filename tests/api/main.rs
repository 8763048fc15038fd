//! brama's API tests: the real application on a real port, on SQLite and on PostgreSQL.

mod admin;
mod atomicity;
mod auth;
mod browser;
mod company;
mod csrf;
mod e2e;
mod faults;
mod helpers;
mod input;
mod janitor;
mod members;
mod mfa;
mod oidc;
mod openapi;
mod outbox;
mod passkeys;
mod privacy;
mod process;
mod profile;
mod scale;
mod tokens;
