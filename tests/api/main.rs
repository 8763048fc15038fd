//! brama's API tests: the real application on a real port, on SQLite and on PostgreSQL.

mod auth;
mod csrf;
mod helpers;
mod tokens;
