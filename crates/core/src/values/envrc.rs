//! `.envrc` files in direnv's common subset, read without running a shell.
//!
//! Understood: comments, `export NAME=value` (several per line, bash quoting: `'literal'`,
//! `"with $VAR, ${VAR} and ${VAR:-default}"`, backslash escapes), `NAME=value` (a shell variable,
//! usable later but not exported, as in direnv), `export NAME`, `dotenv [file]`,
//! `dotenv_if_exists [file]`, `source_env path`, `source_env_if_exists path`, `source_up`,
//! `source_up_if_exists`, `PATH_add dir`, and `watch_file`/`strict_env` (no effect on values).
//! Anything else (command substitution, pipes, conditionals, other commands) is an error that names
//! the line and suggests running kdeploy under `direnv exec`, which runs the full shell.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{Origin, ValuesError};
use crate::diagnostic::SourceError;

const SUPPORTED: &str =
    "export, NAME=value, dotenv, dotenv_if_exists, source_env, source_env_if_exists, source_up, PATH_add";

/// The variables an `.envrc` exports, in the order they were first exported.
pub fn load(
    path: &Path,
    loaded: &BTreeMap<String, String>,
    process: &BTreeMap<String, String>,
) -> Result<Vec<(String, String, Origin)>, ValuesError> {
    let mut scope = process.clone();
    scope.extend(loaded.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut session = Session {
        scope,
        exported: Vec::new(),
        exported_set: BTreeSet::new(),
        origins: BTreeMap::new(),
        depth: 0,
    };
    session.run_file(path)?;
    Ok(session
        .exported
        .iter()
        .map(|name| {
            let value = session.scope.get(name).cloned().unwrap_or_default();
            (name.clone(), value, session.origins[name].clone())
        })
        .collect())
}

struct Session {
    scope: BTreeMap<String, String>,
    exported: Vec<String>,
    exported_set: BTreeSet<String>,
    origins: BTreeMap<String, Origin>,
    depth: usize,
}

/// One word with the position of its first character.
struct Word {
    text: String,
    line: usize,
    column: usize,
    /// Whether the word had an unquoted `=` after a valid name (an assignment).
    assignment: Option<(String, String)>,
}

impl Session {
    fn run_file(&mut self, path: &Path) -> Result<(), ValuesError> {
        self.depth += 1;
        if self.depth > 16 {
            return Err(error(
                path,
                None,
                1,
                1,
                "source_env nests more than 16 levels deep; is there a cycle?",
            ));
        }
        let text = crate::trust::read_text(path, "env file", crate::trust::policy().limits.max_text_file_bytes)?;
        let dir = path
            .parent()
            .map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d })
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let saved_pwd = self.scope.insert("PWD".to_owned(), dir.display().to_string());
        let mut lexer = Lexer {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
            column: 1,
        };
        loop {
            let command = lexer
                .command(&self.scope)
                .map_err(|(line, column, message)| error(path, Some(&text), line, column, &message))?;
            let Some(command) = command else { break };
            if !command.is_empty() {
                self.run_command(path, &text, &dir, command)?;
            }
        }
        match saved_pwd {
            Some(pwd) => self.scope.insert("PWD".to_owned(), pwd),
            None => self.scope.remove("PWD"),
        };
        self.depth -= 1;
        Ok(())
    }

    fn set(&mut self, name: &str, value: String, origin: Origin, export: bool) {
        self.scope.insert(name.to_owned(), value);
        if export && self.exported_set.insert(name.to_owned()) {
            self.exported.push(name.to_owned());
        }
        if export || self.exported_set.contains(name) {
            self.origins.insert(name.to_owned(), origin);
        }
    }

    fn run_command(&mut self, path: &Path, text: &str, dir: &Path, words: Vec<Word>) -> Result<(), ValuesError> {
        let origin = |w: &Word| Origin::File {
            path: path.to_path_buf(),
            line: w.line,
            column: w.column,
        };
        let first = &words[0];
        let unsupported = |w: &Word, what: &str| error(path, Some(text), w.line, w.column, what);
        if first.assignment.is_some() {
            for word in &words {
                let Some((name, value)) = &word.assignment else {
                    return Err(unsupported(word, &not_supported(&word.text)));
                };
                self.set(name, value.clone(), origin(word), false);
            }
            return Ok(());
        }
        let args = &words[1..];
        // `COMMAND_if_exists` skips a missing file; plain `COMMAND` is an error that names it.
        let present = |file: &Path, command: &str| {
            if file.is_file() {
                Ok(true)
            } else if first.text.ends_with("_if_exists") {
                Ok(false)
            } else {
                Err(unsupported(
                    first,
                    &format!(
                        "{command}: there is no file {} (use {command}_if_exists if it is optional)",
                        file.display()
                    ),
                ))
            }
        };
        let file_arg = |default: &str| dir.join(args.first().map_or(default, |w| w.text.as_str()));
        match first.text.as_str() {
            "export" => {
                for word in args {
                    match &word.assignment {
                        Some((name, value)) => self.set(name, value.clone(), origin(word), true),
                        None if is_name(&word.text) => {
                            let value = self.scope.get(&word.text).cloned().unwrap_or_default();
                            self.set(&word.text.clone(), value, origin(word), true);
                        }
                        None => {
                            return Err(unsupported(
                                word,
                                &format!("`{}` is not a valid variable name", word.text),
                            ));
                        }
                    }
                }
            }
            "dotenv" | "dotenv_if_exists" => {
                let file = file_arg(".env");
                if !present(&file, "dotenv")? {
                    return Ok(());
                }
                for (name, value, origin) in super::dotenv::load(&file)? {
                    self.set(&name, value, origin, true);
                }
            }
            "source_env" | "source_env_if_exists" => {
                let Some(arg) = args.first() else {
                    return Err(unsupported(first, "source_env needs a file or folder"));
                };
                let mut file = dir.join(&arg.text);
                if file.is_dir() {
                    file = file.join(".envrc");
                }
                if !present(&file, "source_env")? {
                    return Ok(());
                }
                self.run_file(&file)?;
            }
            "source_up" | "source_up_if_exists" => {
                let name = args.first().map_or(".envrc", |w| w.text.as_str());
                // In untrusted mode the search stops at the repository's root.
                let found = dir
                    .ancestors()
                    .skip(1)
                    .take_while(|d| crate::trust::may_search(d))
                    .map(|d| d.join(name))
                    .find(|p| p.is_file());
                match found {
                    Some(file) => self.run_file(&file)?,
                    None if first.text == "source_up_if_exists" => {}
                    None => {
                        return Err(unsupported(first, &format!("source_up: no {name} in a parent folder")));
                    }
                }
            }
            "PATH_add" => {
                let mut path_value = self.scope.get("PATH").cloned().unwrap_or_default();
                for word in args.iter().rev() {
                    let added = dir.join(&word.text);
                    path_value = if path_value.is_empty() {
                        added.display().to_string()
                    } else {
                        format!("{}:{path_value}", added.display())
                    };
                }
                self.set("PATH", path_value, origin(first), true);
            }
            "watch_file" | "watch_dir" | "strict_env" | "unstrict_env" | ":" | "true" => {}
            other => return Err(unsupported(first, &not_supported(other))),
        }
        Ok(())
    }
}

/// A variable the env file cannot see (a credential kdeploy reads, or in untrusted mode one the
/// process has but templates may not read) is an error where it is expanded, not an empty string.
fn refuse_hidden(scope: &BTreeMap<String, String>, name: &str) -> Result<(), String> {
    if scope.contains_key(name) {
        return Ok(());
    }
    match crate::trust::env_refusal(name) {
        Some(why) if crate::trust::is_credential(name) || std::env::var_os(name).is_some() => {
            Err(format!("the env file expands ${name}: {why}"))
        }
        _ => Ok(()),
    }
}

fn not_supported(command: &str) -> String {
    format!(
        "`{command}` is not supported: kdeploy reads .envrc files without running a shell and understands {SUPPORTED}; to use the full .envrc, run kdeploy under direnv: `direnv exec . kdeploy ...`"
    )
}

fn error(path: &Path, text: Option<&str>, line: usize, column: usize, message: &str) -> ValuesError {
    SourceError::new(message, path, text, line, column).into()
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

type LexError = (usize, usize, String);

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    column: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// The next command (words up to a newline or `;`), expanded with `scope`; `None` at the end.
    fn command(&mut self, scope: &BTreeMap<String, String>) -> Result<Option<Vec<Word>>, LexError> {
        if self.peek().is_none() {
            return Ok(None);
        }
        let mut words = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some('\n' | ';') => {
                    self.bump();
                    break;
                }
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                Some('\\') if self.chars.get(self.pos + 1) == Some(&'\n') => {
                    self.bump();
                    self.bump();
                }
                Some(_) => words.push(self.word(scope)?),
            }
        }
        Ok(Some(words))
    }

    fn word(&mut self, scope: &BTreeMap<String, String>) -> Result<Word, LexError> {
        let (line, column) = (self.line, self.column);
        let mut text = String::new();
        let mut assignment_at: Option<usize> = None;
        let mut quoted_before_equals = false;
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' => break,
                '\'' => {
                    self.bump();
                    quoted_before_equals |= assignment_at.is_none();
                    loop {
                        match self.bump() {
                            Some('\'') => break,
                            Some(ch) => text.push(ch),
                            None => return Err((line, column, "unterminated single quote".into())),
                        }
                    }
                }
                '"' => {
                    self.bump();
                    quoted_before_equals |= assignment_at.is_none();
                    self.double_quoted(scope, &mut text, line, column)?;
                }
                '\\' => {
                    self.bump();
                    match self.bump() {
                        Some('\n') => {}
                        Some(ch) => text.push(ch),
                        None => {}
                    }
                }
                '$' => self.expansion(scope, &mut text)?,
                '`' | '|' | '&' | '<' | '>' | '(' | ')' => {
                    return Err((
                        self.line,
                        self.column,
                        format!(
                            "shell syntax `{c}` is not supported: kdeploy reads .envrc files without running a shell; to use the full .envrc, run kdeploy under direnv: `direnv exec . kdeploy ...`"
                        ),
                    ));
                }
                '=' if assignment_at.is_none() && !quoted_before_equals && is_name(&text) => {
                    self.bump();
                    assignment_at = Some(text.len());
                    text.push('=');
                }
                '~' if text.is_empty() || (assignment_at == Some(text.len() - 1)) => {
                    self.bump();
                    text.push_str(scope.get("HOME").map_or("~", String::as_str));
                }
                _ => {
                    self.bump();
                    text.push(c);
                }
            }
        }
        let assignment = assignment_at.map(|at| (text[..at].to_owned(), text[at + 1..].to_owned()));
        Ok(Word {
            text,
            line,
            column,
            assignment,
        })
    }

    fn double_quoted(
        &mut self,
        scope: &BTreeMap<String, String>,
        text: &mut String,
        line: usize,
        column: usize,
    ) -> Result<(), LexError> {
        loop {
            match self.peek() {
                None => return Err((line, column, "unterminated double quote".into())),
                Some('"') => {
                    self.bump();
                    return Ok(());
                }
                Some('\\') => {
                    self.bump();
                    match self.bump() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => text.push(c),
                        Some('\n') => {}
                        Some(c) => {
                            text.push('\\');
                            text.push(c);
                        }
                        None => return Err((line, column, "unterminated double quote".into())),
                    }
                }
                Some('$') => self.expansion(scope, text)?,
                Some('`') => {
                    return Err((
                        self.line,
                        self.column,
                        "command substitution is not supported; run kdeploy under `direnv exec . kdeploy ...`".into(),
                    ));
                }
                Some(c) => {
                    self.bump();
                    text.push(c);
                }
            }
        }
    }

    /// `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`; `$(...)` is refused.
    fn expansion(&mut self, scope: &BTreeMap<String, String>, text: &mut String) -> Result<(), LexError> {
        let (line, column) = (self.line, self.column);
        self.bump(); // $
        match self.peek() {
            Some('(') => Err((
                line,
                column,
                "command substitution `$(...)` is not supported; run kdeploy under `direnv exec . kdeploy ...`".into(),
            )),
            Some('{') => {
                self.bump();
                let mut inner = String::new();
                loop {
                    match self.bump() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => return Err((line, column, "unterminated ${".into())),
                    }
                }
                let (name, default) = match inner.find(['-', ':']) {
                    Some(i) if inner[i..].starts_with(":-") => (&inner[..i], Some((true, &inner[i + 2..]))),
                    Some(i) if inner[i..].starts_with('-') => (&inner[..i], Some((false, &inner[i + 1..]))),
                    Some(_) => {
                        return Err((
                            line,
                            column,
                            format!(
                                "`${{{inner}}}` is not supported (only ${{NAME}}, ${{NAME:-default}} and ${{NAME-default}} are)"
                            ),
                        ));
                    }
                    None => (inner.as_str(), None),
                };
                if !is_name(name) {
                    return Err((
                        line,
                        column,
                        format!("`${{{inner}}}` is not a variable kdeploy can expand"),
                    ));
                }
                refuse_hidden(scope, name).map_err(|why| (line, column, why))?;
                match (scope.get(name), default) {
                    (Some(v), Some((true, d))) if v.is_empty() => text.push_str(d),
                    (Some(v), _) => text.push_str(v),
                    (None, Some((_, d))) => text.push_str(d),
                    (None, None) => {}
                }
                Ok(())
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    self.bump();
                    name.push(c);
                }
                refuse_hidden(scope, &name).map_err(|why| (line, column, why))?;
                text.push_str(scope.get(&name).map_or("", String::as_str));
                Ok(())
            }
            _ => {
                text.push('$');
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)], process: &[(&str, &str)]) -> Result<Vec<(String, String)>, ValuesError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let process: BTreeMap<String, String> = process.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let out = load(&dir.path().join(".envrc"), &BTreeMap::new(), &process)?;
        Ok(out.into_iter().map(|(k, v, _)| (k, v)).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn exports_with_bash_quoting_and_expansion() {
        let envrc = "# comment\nLOCAL=hidden\nexport A='single $LOCAL' B=\"double $LOCAL\"\nexport C=${MISSING:-fallback} D=${HOME}/x\nexport E=a\\ b F=\"q\\\"uote\"\ndotenv\n";
        let got = run(
            &[(".envrc", envrc), (".env", "G=from-dotenv\n")],
            &[("HOME", "/home/u")],
        )
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("A", "single $LOCAL"),
                ("B", "double hidden"),
                ("C", "fallback"),
                ("D", "/home/u/x"),
                ("E", "a b"),
                ("F", "q\"uote"),
                ("G", "from-dotenv")
            ])
        );
    }

    #[test]
    fn source_env_and_if_exists_forms() {
        let got = run(
            &[
                (
                    ".envrc",
                    "source_env sub\ndotenv_if_exists missing.env\nexport B=$A-b\n",
                ),
                ("sub/.envrc", "export A=a\n"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(got, pairs(&[("A", "a"), ("B", "a-b")]));
    }

    #[test]
    fn anything_else_is_refused_with_the_line_and_a_way_out() {
        for (envrc, line) in [
            ("export A=1\nexport B=$(date)\n", 2),
            ("use nix\n", 1),
            ("export A=1\nif true; then export B=2; fi\n", 2),
            ("export A=`x`\n", 1),
            ("A=1 make\n", 1),
        ] {
            let err = run(&[(".envrc", envrc)], &[]).unwrap_err().to_string();
            assert!(err.contains(&format!(".envrc:{line}:")), "{envrc:?}: {err}");
            assert!(err.contains("direnv exec"), "{err}");
        }
    }
}
