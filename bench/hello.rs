//! The yardstick of issue 18: a bare axum "hello" on the same runtime as brama (tokio's
//! multi-threaded runtime, one worker per core it may use), with no layers, no logging and no
//! state. `bench/run` builds it (`cargo build --release --example hello`), pins it to brama's core
//! and measures it in the same run as brama, so that brama's figures can be read as fractions of
//! what axum and tokio alone can do on that core.
//!
//! `hello 127.0.0.1:PORT`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
    let app = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, app)
        .await
        .unwrap_or_else(|e| panic!("serving failed: {e}"));
}
