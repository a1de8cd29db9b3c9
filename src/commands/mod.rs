//! One module per subcommand; each turns parsed flags into calls on the library stages and says how
//! the process should exit.

mod apply;
mod argocd;
mod convert;
mod delete;
mod deploy;
mod diff;
mod docs;
mod flux;
mod history;
pub(crate) mod inputs;
mod list;
mod located;
mod push;
mod render;
mod revisions;
mod rollback;
mod sources;
mod status;
mod values;
mod vault;
mod vendor;

pub use inputs::{Inputs, RenderedInputs};

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Exit codes, as kubectl diff uses them.
pub const EXIT_OK: u8 = 0;
pub const EXIT_CHANGES: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Validate(args) => render::validate(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Status(args) => status::run(&args),
        Command::List(args) => list::run(&args),
        Command::History(args) => history::run(&args),
        Command::Rollback(args) => rollback::run(&args),
        Command::Delete(args) => delete::run(&args),
        Command::Values(args) => values::run(&args),
        Command::Sources(args) => sources::run(&args),
        Command::Vendor(args) => vendor::run(&args),
        Command::Vault(command) => vault::run(&command),
        Command::Argocd(command) => argocd::run(&command),
        Command::Convert(command) => convert::run(&command),
        Command::Push(args) => push::run(&args),
        Command::Flux(command) => flux::run(&command),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man => docs::man(),
        Command::Schema => docs::schema(),
    }
}

/// Writes all of `text` to stdout at once; a closed pipe (`| head`) is not an error.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
