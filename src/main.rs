//! The `brama` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = brama::cli::Cli::parse();
    match brama::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brama: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
