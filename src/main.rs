//! The `brama` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = brama::cli::Cli::parse();
    let result = brama::cli::run(cli).await;
    // Log lines still gathered go out before the process does (and before its last word).
    brama::telemetry::flush_logs();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brama: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
