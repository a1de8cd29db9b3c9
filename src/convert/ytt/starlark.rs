//! ytt's Starlark subset: a lexer and a parser for the expressions and statements that ytt templates
//! and `.star` modules are written in, producing the tree [`super::translate`] turns into Tera.
//!
//! Only the syntax is read here; what it means is decided by the translation. Anything outside the
//! subset (lambdas, `while`, comprehensions, slices, `*args`) is a [`SyntaxError`] that says what it
//! is, so the converter can refuse it by name.

use std::fmt;

/// A Starlark expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Name(String),
    Int(i64),
    /// A float literal, kept as written (the converter refuses float arithmetic and formatting).
    Float(String),
    Str(String),
    Bool(bool),
    None,
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Attr(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Arg>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `then if cond else otherwise`.
    Cond {
        then: Box<Expr>,
        cond: Box<Expr>,
        otherwise: Box<Expr>,
    },
}

/// A call argument, positional or `name=value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<String>,
    pub value: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    BitOr,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::FloorDiv => "//",
            BinOp::Mod => "%",
            BinOp::BitOr => "|",
        }
    }
}

/// One statement of a code line (`#@ …`) or of a `.star` module.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `load("module", "name", alias="name")`: (local name, exported name) pairs.
    Load {
        module: String,
        names: Vec<(String, String)>,
    },
    If(Expr),
    Elif(Expr),
    Else,
    For {
        vars: Vec<String>,
        iter: Expr,
    },
    End,
    Def {
        name: String,
        params: Vec<Param>,
    },
    Return(Option<Expr>),
    Assign {
        target: String,
        value: Expr,
    },
    Break,
    Continue,
    Pass,
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub default: Option<Expr>,
}

/// Why a text is not in the subset, and where in it (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub offset: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Int(i64),
    Float(String),
    Str(String),
    Punct(&'static str),
}

/// The longest punctuation first, so `//` is not read as two `/`.
const PUNCTUATION: &[&str] = &[
    "**", "//", "==", "!=", "<=", ">=", "+=", "-=", "*=", "(", ")", "[", "]", "{", "}", ",", ":", ".", "=", "<", ">",
    "+", "-", "*", "/", "%", "|", ";",
];

/// Binary operators written with punctuation, and their precedence (higher binds tighter).
const OPERATORS: &[(&str, BinOp, u8)] = &[
    ("==", BinOp::Eq, 4),
    ("!=", BinOp::Ne, 4),
    ("<", BinOp::Lt, 4),
    ("<=", BinOp::Le, 4),
    (">", BinOp::Gt, 4),
    (">=", BinOp::Ge, 4),
    ("|", BinOp::BitOr, 5),
    ("+", BinOp::Add, 6),
    ("-", BinOp::Sub, 6),
    ("*", BinOp::Mul, 7),
    ("/", BinOp::Div, 7),
    ("//", BinOp::FloorDiv, 7),
    ("%", BinOp::Mod, 7),
];

/// Starlark's reserved words that the subset does not take, each refused by name.
const UNSUPPORTED_WORDS: &[(&str, &str)] = &[("lambda", "a lambda"), ("while", "a while loop")];

fn lex(text: &str) -> Result<Vec<(Token, usize)>, SyntaxError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
            i += 1;
            continue;
        }
        if c == b'#' {
            // A Starlark comment runs to the end of the line.
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &text[start..i];
            // r"…" raw strings
            if (word == "r" || word == "b" || word == "rb" || word == "br")
                && i < bytes.len()
                && (bytes[i] == b'"' || bytes[i] == b'\'')
            {
                if word != "r" {
                    return Err(error("a bytes literal", start));
                }
                let (s, end) = lex_string(text, i, true)?;
                tokens.push((Token::Str(s), start));
                i = end;
                continue;
            }
            tokens.push((Token::Ident(word.to_owned()), start));
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_') {
                // An exponent sign belongs to the number.
                if (bytes[i] == b'e' || bytes[i] == b'E')
                    && !text[start..i].starts_with("0x")
                    && bytes.get(i + 1).is_some_and(|b| *b == b'+' || *b == b'-')
                {
                    i += 1;
                }
                i += 1;
            }
            let literal = &text[start..i];
            tokens.push((number(literal, start)?, start));
            continue;
        }
        if c == b'"' || c == b'\'' {
            let (s, end) = lex_string(text, i, false)?;
            tokens.push((Token::Str(s), start));
            i = end;
            continue;
        }
        match PUNCTUATION.iter().find(|p| text[i..].starts_with(**p)) {
            Some(p) => {
                tokens.push((Token::Punct(p), start));
                i += p.len();
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(error(&format!("the character {ch:?}"), start));
            }
        }
    }
    Ok(tokens)
}

fn number(literal: &str, at: usize) -> Result<Token, SyntaxError> {
    let clean = literal.replace('_', "");
    let parsed = if let Some(hex) = clean.strip_prefix("0x").or_else(|| clean.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = clean.strip_prefix("0o").or_else(|| clean.strip_prefix("0O")) {
        i64::from_str_radix(oct, 8).ok()
    } else if clean.chars().all(|c| c.is_ascii_digit()) {
        if clean.len() > 1 && clean.starts_with('0') {
            // Starlark refuses 0755; only 0o755 is octal.
            return Err(error("an integer with a leading zero", at));
        }
        clean.parse().ok()
    } else if clean.parse::<f64>().is_ok() {
        return Ok(Token::Float(literal.to_owned()));
    } else {
        None
    };
    parsed
        .map(Token::Int)
        .ok_or_else(|| error(&format!("the number {literal} (not an int64 or a float)"), at))
}

/// Reads a string literal starting at the quote `start`; returns its value and the offset after it.
fn lex_string(text: &str, start: usize, raw: bool) -> Result<(String, usize), SyntaxError> {
    let bytes = text.as_bytes();
    let quote = bytes[start];
    let triple = bytes.get(start + 1) == Some(&quote) && bytes.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    let mut out = String::new();
    loop {
        let Some(&c) = bytes.get(i) else {
            return Err(SyntaxError {
                message: "an unterminated string".to_owned(),
                offset: start,
            });
        };
        if c == quote && (!triple || (bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote))) {
            return Ok((out, i + if triple { 3 } else { 1 }));
        }
        if c == b'\n' && !triple {
            return Err(SyntaxError {
                message: "an unterminated string".to_owned(),
                offset: start,
            });
        }
        if c == b'\\' && !raw {
            let Some(&next) = bytes.get(i + 1) else {
                return Err(error("an unterminated string", start));
            };
            let escaped = match next {
                b'n' => '\n',
                b't' => '\t',
                b'r' => '\r',
                b'\\' => '\\',
                b'\'' => '\'',
                b'"' => '"',
                b'0' => '\0',
                b'\n' => {
                    i += 2;
                    continue;
                }
                other => {
                    return Err(error(&format!("the string escape \\{}", other as char), i));
                }
            };
            out.push(escaped);
            i += 2;
            continue;
        }
        let ch = text[i..].chars().next().expect("inside the text");
        out.push(ch);
        i += ch.len_utf8();
    }
}

fn error(what: &str, offset: usize) -> SyntaxError {
    SyntaxError {
        message: format!("{what} is not in the Starlark subset the converter reads"),
        offset,
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    position: usize,
    end: usize,
    depth: usize,
}

/// Nesting deeper than this is refused rather than recursed into.
const MAX_NESTING: usize = 64;

impl Parser {
    fn new(text: &str) -> Result<Self, SyntaxError> {
        Ok(Parser {
            tokens: lex(text)?,
            position: 0,
            end: text.len(),
            depth: 0,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(t, _)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.position).map_or(self.end, |(_, at)| *at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).map(|(t, _)| t.clone());
        self.position += 1;
        token
    }

    fn at_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Token::Punct(q)) if *q == p)
    }

    fn at_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(q)) if q == w)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.at_punct(p) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.at_word(w) {
            self.position += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), SyntaxError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(SyntaxError {
                message: format!("expected `{p}` {}", self.found()),
                offset: self.offset(),
            })
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "at the end".to_owned(),
            Some(Token::Ident(w)) => format!("before `{w}`"),
            Some(Token::Punct(p)) => format!("before `{p}`"),
            Some(Token::Int(i)) => format!("before {i}"),
            Some(Token::Float(f)) => format!("before {f}"),
            Some(Token::Str(_)) => "before a string".to_owned(),
        }
    }

    fn ident(&mut self) -> Result<String, SyntaxError> {
        match self.next() {
            Some(Token::Ident(w)) if !is_keyword(&w) => Ok(w),
            _ => {
                self.position -= 1;
                Err(SyntaxError {
                    message: format!("expected a name {}", self.found()),
                    offset: self.offset(),
                })
            }
        }
    }

    fn finish(&self) -> Result<(), SyntaxError> {
        if self.position < self.tokens.len() {
            return Err(SyntaxError {
                message: format!("unexpected text {}", self.found()),
                offset: self.offset(),
            });
        }
        Ok(())
    }

    /// An expression, or a tuple of them (`a, b`).
    fn expr_list(&mut self) -> Result<Expr, SyntaxError> {
        let first = self.expr()?;
        if !self.at_punct(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_punct(",") {
            if self.at_end_of_expr() {
                break;
            }
            items.push(self.expr()?);
        }
        Ok(Expr::Tuple(items))
    }

    fn at_end_of_expr(&self) -> bool {
        self.peek().is_none() || self.at_punct(")") || self.at_punct("]") || self.at_punct("}") || self.at_punct(":")
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(error("nesting this deep", self.offset()));
        }
        let result = self.conditional();
        self.depth -= 1;
        result
    }

    fn conditional(&mut self) -> Result<Expr, SyntaxError> {
        if self.at_word("lambda") {
            return Err(error("a lambda", self.offset()));
        }
        let then = self.binary(0)?;
        if self.eat_word("if") {
            let cond = self.binary(0)?;
            if !self.eat_word("else") {
                return Err(SyntaxError {
                    message: format!("expected `else` {}", self.found()),
                    offset: self.offset(),
                });
            }
            let otherwise = self.expr()?;
            return Ok(Expr::Cond {
                then: Box::new(then),
                cond: Box::new(cond),
                otherwise: Box::new(otherwise),
            });
        }
        Ok(then)
    }

    /// Precedence climbing over Starlark's binary operators (`not` sits between `and` and the
    /// comparisons).
    fn binary(&mut self, min: u8) -> Result<Expr, SyntaxError> {
        let mut lhs = if self.at_word("not") && min <= 3 {
            self.position += 1;
            Expr::Not(Box::new(self.binary(3)?))
        } else {
            self.unary()?
        };
        while let Some((op, precedence, width)) = self.binary_op() {
            if precedence < min {
                break;
            }
            self.position += width;
            let rhs = self.binary(precedence + 1)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn binary_op(&self) -> Option<(BinOp, u8, usize)> {
        let op = match self.peek()? {
            Token::Ident(w) => match w.as_str() {
                "or" => (BinOp::Or, 1, 1),
                "and" => (BinOp::And, 2, 1),
                "in" => (BinOp::In, 4, 1),
                "not" => match self.tokens.get(self.position + 1) {
                    Some((Token::Ident(next), _)) if next == "in" => (BinOp::NotIn, 4, 2),
                    _ => return None,
                },
                _ => return None,
            },
            Token::Punct(p) => {
                let (_, op, precedence) = OPERATORS.iter().find(|(symbol, ..)| symbol == p)?;
                (*op, *precedence, 1)
            }
            _ => return None,
        };
        Some(op)
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        if self.eat_punct("-") {
            return Ok(match self.unary()? {
                Expr::Int(i) => Expr::Int(-i),
                other => Expr::Neg(Box::new(other)),
            });
        }
        if self.eat_punct("+") {
            return self.unary();
        }
        if self.at_punct("**") {
            return Err(error("`**`", self.offset()));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, SyntaxError> {
        let mut e = self.primary()?;
        loop {
            if self.eat_punct(".") {
                let name = self.ident()?;
                e = Expr::Attr(Box::new(e), name);
            } else if self.at_punct("[") {
                let at = self.offset();
                self.position += 1;
                let index = self.expr()?;
                if self.at_punct(":") {
                    return Err(error("a slice", at));
                }
                self.expect_punct("]")?;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else if self.eat_punct("(") {
                let args = self.call_args()?;
                e = Expr::Call(Box::new(e), args);
            } else {
                break;
            }
        }
        Ok(e)
    }

    fn call_args(&mut self) -> Result<Vec<Arg>, SyntaxError> {
        let mut args = Vec::new();
        loop {
            if self.eat_punct(")") {
                return Ok(args);
            }
            if self.at_punct("*") || self.at_punct("**") {
                return Err(error("`*args` or `**kwargs` in a call", self.offset()));
            }
            let named = match (self.peek(), self.tokens.get(self.position + 1)) {
                (Some(Token::Ident(name)), Some((Token::Punct("="), _))) if !is_keyword(name) => Some(name.clone()),
                _ => None,
            };
            if named.is_some() {
                self.position += 2;
            }
            let value = self.expr()?;
            if self.at_word("for") {
                return Err(error("a comprehension", self.offset()));
            }
            args.push(Arg { name: named, value });
            if !self.eat_punct(",") {
                self.expect_punct(")")?;
                return Ok(args);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let at = self.offset();
        match self.next() {
            Some(Token::Int(i)) => Ok(Expr::Int(i)),
            Some(Token::Float(f)) => Ok(Expr::Float(f)),
            Some(Token::Str(mut s)) => {
                // Adjacent string literals are one string, as in Python.
                while let Some(Token::Str(next)) = self.peek() {
                    s.push_str(next);
                    self.position += 1;
                }
                Ok(Expr::Str(s))
            }
            Some(Token::Ident(w)) => match w.as_str() {
                "True" => Ok(Expr::Bool(true)),
                "False" => Ok(Expr::Bool(false)),
                "None" => Ok(Expr::None),
                _ => {
                    if let Some((_, what)) = UNSUPPORTED_WORDS.iter().find(|(word, _)| *word == w) {
                        return Err(error(what, at));
                    }
                    if is_keyword(&w) {
                        return Err(SyntaxError {
                            message: format!("unexpected `{w}`"),
                            offset: at,
                        });
                    }
                    Ok(Expr::Name(w))
                }
            },
            Some(Token::Punct("(")) => {
                if self.eat_punct(")") {
                    return Ok(Expr::Tuple(Vec::new()));
                }
                let inner = self.expr_list()?;
                if self.at_word("for") {
                    return Err(error("a generator expression", self.offset()));
                }
                self.expect_punct(")")?;
                Ok(inner)
            }
            Some(Token::Punct("[")) => {
                let mut items = Vec::new();
                loop {
                    if self.eat_punct("]") {
                        return Ok(Expr::List(items));
                    }
                    items.push(self.expr()?);
                    if self.at_word("for") {
                        return Err(error("a list comprehension", self.offset()));
                    }
                    if !self.eat_punct(",") {
                        self.expect_punct("]")?;
                        return Ok(Expr::List(items));
                    }
                }
            }
            Some(Token::Punct("{")) => {
                let mut entries = Vec::new();
                loop {
                    if self.eat_punct("}") {
                        return Ok(Expr::Dict(entries));
                    }
                    let key = self.expr()?;
                    self.expect_punct(":")?;
                    let value = self.expr()?;
                    if self.at_word("for") {
                        return Err(error("a dict comprehension", self.offset()));
                    }
                    entries.push((key, value));
                    if !self.eat_punct(",") {
                        self.expect_punct("}")?;
                        return Ok(Expr::Dict(entries));
                    }
                }
            }
            _ => {
                self.position = self.position.saturating_sub(1);
                Err(SyntaxError {
                    message: format!("expected an expression {}", self.found()),
                    offset: at,
                })
            }
        }
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "and"
            | "or"
            | "not"
            | "in"
            | "if"
            | "elif"
            | "else"
            | "for"
            | "def"
            | "return"
            | "end"
            | "load"
            | "break"
            | "continue"
            | "pass"
            | "lambda"
            | "while"
            | "True"
            | "False"
            | "None"
    )
}

/// Parses one expression.
pub fn parse_expr(text: &str) -> Result<Expr, SyntaxError> {
    let mut parser = Parser::new(text)?;
    let e = parser.expr_list()?;
    parser.finish()?;
    Ok(e)
}

/// Parses the statement of one code line (`#@ …` with the marker taken off). Block statements end
/// with `:`; ytt closes them with `end` rather than by indentation.
pub fn parse_stmt(text: &str) -> Result<Stmt, SyntaxError> {
    let mut p = Parser::new(text)?;
    let stmt = match p.peek() {
        None => Stmt::Pass,
        Some(Token::Ident(w)) => match w.as_str() {
            "load" if matches!(p.tokens.get(1), Some((Token::Punct("("), _))) => {
                p.position += 2;
                let args = p.call_args()?;
                load_stmt(args, p.offset())?
            }
            "if" | "elif" => {
                let elif = w == "elif";
                p.position += 1;
                let cond = p.expr()?;
                p.expect_punct(":")?;
                if elif { Stmt::Elif(cond) } else { Stmt::If(cond) }
            }
            "else" => {
                p.position += 1;
                p.expect_punct(":")?;
                Stmt::Else
            }
            "end" | "break" | "continue" | "pass" => {
                let stmt = match w.as_str() {
                    "end" => Stmt::End,
                    "break" => Stmt::Break,
                    "continue" => Stmt::Continue,
                    _ => Stmt::Pass,
                };
                p.position += 1;
                stmt
            }
            "for" => {
                p.position += 1;
                let mut vars = vec![p.ident()?];
                while p.eat_punct(",") {
                    vars.push(p.ident()?);
                }
                if !p.eat_word("in") {
                    return Err(SyntaxError {
                        message: format!("expected `in` {}", p.found()),
                        offset: p.offset(),
                    });
                }
                let iter = p.expr_list()?;
                p.expect_punct(":")?;
                Stmt::For { vars, iter }
            }
            "def" => {
                p.position += 1;
                let name = p.ident()?;
                p.expect_punct("(")?;
                let mut params = Vec::new();
                loop {
                    if p.eat_punct(")") {
                        break;
                    }
                    if p.at_punct("*") || p.at_punct("**") {
                        return Err(error("`*args` or `**kwargs` parameters", p.offset()));
                    }
                    let name = p.ident()?;
                    let default = if p.eat_punct("=") { Some(p.expr()?) } else { None };
                    params.push(Param { name, default });
                    if !p.eat_punct(",") {
                        p.expect_punct(")")?;
                        break;
                    }
                }
                p.expect_punct(":")?;
                Stmt::Def { name, params }
            }
            "return" => {
                p.position += 1;
                if p.peek().is_none() {
                    Stmt::Return(None)
                } else {
                    Stmt::Return(Some(p.expr_list()?))
                }
            }
            "while" => return Err(error("a while loop", 0)),
            _ => {
                let value = p.expr_list()?;
                if p.at_punct("+=") || p.at_punct("-=") || p.at_punct("*=") {
                    return Err(error("an augmented assignment", p.offset()));
                }
                if p.eat_punct("=") {
                    let Expr::Name(target) = value else {
                        return Err(error("an assignment to anything but a plain name", 0));
                    };
                    let value = p.expr_list()?;
                    Stmt::Assign { target, value }
                } else {
                    Stmt::Expr(value)
                }
            }
        },
        Some(_) => Stmt::Expr(p.expr_list()?),
    };
    if p.eat_punct(";") {
        return Err(error("several statements on one line", p.offset()));
    }
    p.finish()?;
    Ok(stmt)
}

fn load_stmt(args: Vec<Arg>, offset: usize) -> Result<Stmt, SyntaxError> {
    let mut args = args.into_iter();
    let Some(Arg {
        name: None,
        value: Expr::Str(module),
    }) = args.next()
    else {
        return Err(SyntaxError {
            message: "load() takes the module's path as a string first".to_owned(),
            offset,
        });
    };
    let mut names = Vec::new();
    for arg in args {
        match (arg.name, arg.value) {
            (None, Expr::Str(symbol)) => names.push((symbol.clone(), symbol)),
            (Some(local), Expr::Str(symbol)) => names.push((local, symbol)),
            _ => {
                return Err(SyntaxError {
                    message: "load() takes symbol names as strings".to_owned(),
                    offset,
                });
            }
        }
    }
    Ok(Stmt::Load { module, names })
}

/// A `.star` module, read as the converter takes them: top-level `load`s, assignments of
/// constants, and `def`s whose body is a single `return` (optionally after assignments), written
/// with Python's indentation.
pub struct StarModule {
    pub statements: Vec<(usize, StarItem)>,
}

pub enum StarItem {
    Stmt(Stmt),
    Def {
        name: String,
        params: Vec<Param>,
        body: Vec<(usize, Stmt)>,
    },
}

/// Reads a `.star` module; `line` numbers count from 1.
pub fn parse_star(text: &str) -> Result<StarModule, (usize, SyntaxError)> {
    let mut statements = Vec::new();
    let logical = logical_lines(text)?;
    let mut i = 0;
    while i < logical.len() {
        let (line, indent, code) = &logical[i];
        if *indent > 0 {
            return Err((*line, error("an indented statement outside a def", 0)));
        }
        let stmt = parse_stmt(&format!("{code}\n")).map_err(|e| (*line, e))?;
        match stmt {
            Stmt::Def { name, params } => {
                let mut body = Vec::new();
                i += 1;
                while i < logical.len() && logical[i].1 > 0 {
                    let (body_line, body_indent, body_code) = &logical[i];
                    if *body_indent != logical[i.min(logical.len() - 1)].1 {
                        return Err((*body_line, error("a nested block in a def", 0)));
                    }
                    let body_stmt = parse_stmt(body_code).map_err(|e| (*body_line, e))?;
                    if matches!(
                        body_stmt,
                        Stmt::If(_) | Stmt::For { .. } | Stmt::Def { .. } | Stmt::Elif(_) | Stmt::Else
                    ) {
                        return Err((*body_line, error("a block statement inside a def", 0)));
                    }
                    body.push((*body_line, body_stmt));
                    i += 1;
                }
                // ytt's Starlark closes a def with `end`.
                if i < logical.len() && logical[i].1 == 0 && logical[i].2 == "end" {
                    i += 1;
                }
                statements.push((*line, StarItem::Def { name, params, body }));
                continue;
            }
            Stmt::If(_) | Stmt::For { .. } | Stmt::Elif(_) | Stmt::Else | Stmt::End => {
                return Err((*line, error("a block statement at the top of a module", 0)));
            }
            other => statements.push((*line, StarItem::Stmt(other))),
        }
        i += 1;
    }
    Ok(StarModule { statements })
}

/// Joins lines continued inside brackets; gives (first line, indentation, text) per logical line.
/// (first line, indentation, text)
type LogicalLine = (usize, usize, String);

fn logical_lines(text: &str) -> Result<Vec<LogicalLine>, (usize, SyntaxError)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, usize, String, i32)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let stripped = strip_comment(raw);
        if let Some((_, _, text, depth)) = pending.as_mut() {
            text.push('\n');
            text.push_str(stripped);
            *depth += bracket_balance(stripped);
            if *depth <= 0 {
                let (first, indent, text, _) = pending.take().expect("pending");
                out.push((first, indent, text));
            }
            continue;
        }
        if stripped.trim().is_empty() {
            continue;
        }
        let indent = stripped.len() - stripped.trim_start().len();
        if stripped[..indent].contains('\t') {
            return Err((line, error("a tab in indentation", 0)));
        }
        let depth = bracket_balance(stripped);
        if depth > 0 {
            pending = Some((line, indent, stripped.trim().to_owned(), depth));
        } else {
            out.push((line, indent, stripped.trim().to_owned()));
        }
    }
    if let Some((line, ..)) = pending {
        return Err((line, error("an unclosed bracket", 0)));
    }
    Ok(out)
}

/// The line without a trailing `#` comment (a `#` inside a string is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn bracket_balance(line: &str) -> i32 {
    let mut depth = 0;
    outside_strings(line, |c, _| {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        true
    });
    depth
}

/// Calls `visit` with each character of `text` outside string literals and the bracket depth
/// before it, until `visit` returns false.
pub fn outside_strings(text: &str, mut visit: impl FnMut(char, i32) -> bool) {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, c) => {
                if !visit(c, depth) {
                    return;
                }
                match c {
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' => depth -= 1,
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_starlark() {
        let e = parse_expr("a or b and not c == 1 + 2 * 3").unwrap();
        let Expr::Binary(BinOp::Or, _, rhs) = e else {
            panic!("{e:?}")
        };
        let Expr::Binary(BinOp::And, _, rhs) = *rhs else {
            panic!()
        };
        let Expr::Not(inner) = *rhs else { panic!() };
        assert!(matches!(*inner, Expr::Binary(BinOp::Eq, _, _)));
    }

    #[test]
    fn conditional_calls_attributes_and_literals() {
        let e = parse_expr(r#"data.values.x["k"].upper() if len(y) > 0 else {"a": [1, 'b\n']}"#).unwrap();
        assert!(matches!(e, Expr::Cond { .. }));
        assert_eq!(parse_expr("-3").unwrap(), Expr::Int(-3));
        assert!(matches!(parse_expr("not x in y").unwrap(), Expr::Not(_)));
        assert!(matches!(
            parse_expr("x not in y").unwrap(),
            Expr::Binary(BinOp::NotIn, _, _)
        ));
    }

    #[test]
    fn statements_of_code_lines() {
        assert!(matches!(parse_stmt("if/end x:").unwrap_err(), SyntaxError { .. }));
        assert_eq!(
            parse_stmt(r#"load("@ytt:data", "data", b64="base64")"#).unwrap(),
            Stmt::Load {
                module: "@ytt:data".into(),
                names: vec![("data".into(), "data".into()), ("b64".into(), "base64".into())]
            }
        );
        assert!(matches!(parse_stmt("for k, v in d.items():").unwrap(), Stmt::For { vars, .. } if vars.len() == 2));
        assert!(matches!(parse_stmt("def f(a, b=2):").unwrap(), Stmt::Def { params, .. } if params.len() == 2));
        assert!(matches!(parse_stmt("x = 1").unwrap(), Stmt::Assign { .. }));
        assert_eq!(parse_stmt("end").unwrap(), Stmt::End);
    }

    #[test]
    fn outside_the_subset_is_named() {
        for (text, what) in [
            ("lambda x: x", "lambda"),
            ("x[1:2]", "slice"),
            ("[x for x in y]", "comprehension"),
            ("0755", "leading zero"),
            ("while x:", "while"),
            ("x += 1", "augmented"),
            ("f(*a)", "*args"),
        ] {
            let e = parse_stmt(text).unwrap_err();
            assert!(e.message.contains(what), "{text}: {}", e.message);
        }
    }

    #[test]
    fn star_modules_with_defs() {
        let m = parse_star("load(\"@ytt:data\", \"data\")\nPREFIX = \"app-\"\n\ndef name(x):\n  # note\n  return PREFIX + x\nend\nend_value = 1\n").unwrap();
        assert_eq!(m.statements.len(), 4);
        assert!(parse_star("def f():\n  if x:\n    return 1\n").is_err());
    }
}
