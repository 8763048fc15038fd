//! brama: a self-hosted authentication server and member registry for NGOs and small companies.
//!
//! Data flows one way: HTTP surface -> core (rules) -> store (SQL), and results and errors flow
//! back up; see the README's architecture section.

pub mod app;
pub mod cli;
pub mod config;
pub mod core;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod i18n;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
