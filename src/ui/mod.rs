//! Talking to the person at the terminal: warnings on stderr, questions, hidden input, diffs and live
//! progress.

pub mod diff;
pub mod markdown;
pub mod progress;

use std::io::{BufRead, IsTerminal, Write};

/// Colour on stdout: only on a terminal, and never with `NO_COLOR` set (https://no-color.org).
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A warning on stderr.
pub fn warn(message: &str) {
    eprintln!("warning: {}", crate::trust::redact(message));
}

/// A line of information on stderr (stdout is kept for data).
pub fn note(message: &str) {
    eprintln!("{}", crate::trust::redact(message));
}

pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Asks a yes/no question on the terminal; `default` when the answer is empty.
pub fn confirm(question: &str, default: bool) -> std::io::Result<bool> {
    let hint = if default { "[Y/n]" } else { "[y/N]" };
    eprint!("{question} {hint} ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(match answer.trim().to_ascii_lowercase().as_str() {
        "" => default,
        a => a == "y" || a == "yes",
    })
}

/// Reads a secret without echoing it.
pub fn prompt_hidden(prompt: &str) -> std::io::Result<zeroize::Zeroizing<String>> {
    rpassword::prompt_password(prompt).map(zeroize::Zeroizing::new)
}
