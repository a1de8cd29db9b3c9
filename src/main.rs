//! The `kdeploy` binary: parse flags, run the command, turn errors into exit code 2.

use std::process::ExitCode;

use clap::Parser;
use kdeploy::cli::Cli;
use kdeploy::commands::{self, EXIT_ERROR};
use kdeploy::trust::redact;

/// mimalloc instead of the system allocator: rendering 10,000 objects allocates millions of small
/// strings and maps, and takes about a fifth less time with it (BENCHMARKS.md, "Render at 10,000
/// objects"). Built without transparent huge pages, which cost a third more memory for no speed.
#[global_allocator]
/// Wrapped so that untrusted input meets a heap limit (kdeploy::trust::Bounded).
static ALLOCATOR: kdeploy::trust::Bounded<mimalloc::MiMalloc> = kdeploy::trust::Bounded(mimalloc::MiMalloc);

fn main() -> ExitCode {
    kdeploy::util::process_start();
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // Every secret and credential kdeploy learned is masked, whatever stage the error came from.
            let mut shown = error.to_string();
            eprintln!("error: {}", redact(&shown));
            for cause in error.chain().skip(1) {
                let cause = cause.to_string();
                if !shown.contains(&cause) {
                    eprintln!("  caused by: {}", redact(&cause));
                    shown.push_str(&cause);
                }
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
