//! Starlark expressions to Tera expressions that give the same value, or a refusal that says why not.
//!
//! Tera 2 shares most of Starlark's value semantics: truthiness, `and`/`or` returning an operand,
//! conditional expressions, `in`. Where they part (`+` on strings and lists, `str(True)`, `len` of a
//! string) the translation uses `~` when both sides are known to be strings, and otherwise the
//! `starlark_*` filters, which do exactly what Starlark does. Anything else is refused.

use std::collections::HashMap;

use super::starlark::{Arg, BinOp, Expr, Param};

/// What a translated expression is known to be, from its form alone (never from data values, which
/// a flag can change at render time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Bool,
    Null,
    List,
    Map,
    Unknown,
}

/// A Tera expression and what it is known to be.
#[derive(Debug, Clone)]
pub struct Tera {
    pub text: String,
    pub ty: Ty,
}

impl Tera {
    fn new(text: impl Into<String>, ty: Ty) -> Self {
        Tera { text: text.into(), ty }
    }

    /// The text, parenthesised unless it is a single term.
    fn term(&self) -> String {
        if is_simple(&self.text) {
            self.text.clone()
        } else {
            format!("({})", self.text)
        }
    }

    /// The text as the base of `.attr` or `[index]`: Tera takes those after a name or a
    /// parenthesised expression, not after a literal.
    fn base(&self) -> String {
        if !self.text.starts_with(['[', '{', '"']) && is_simple(&self.text) {
            self.text.clone()
        } else {
            format!("({})", self.text)
        }
    }

    /// As a string, the way Starlark's `str()` writes it.
    fn as_string(&self) -> Tera {
        match self.ty {
            Ty::Str => self.clone(),
            _ => Tera::new(format!("{} | starlark_str", self.term()), Ty::Str),
        }
    }
}

fn is_simple(text: &str) -> bool {
    let mut simple = true;
    super::starlark::outside_strings(text, |c, depth| {
        simple = !(depth == 0 && (c == ' ' || c == '|' || c == '~'));
        simple
    });
    simple
}

/// The ytt helper modules (`load("@ytt:NAME", …)`) the translation knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    Data,
    Base64,
    Json,
    Yaml,
    Sha256,
    Md5,
    Struct,
    Assert,
    Template,
    Overlay,
    Other,
}

impl Helper {
    pub fn from_module(module: &str) -> Option<Helper> {
        Some(match module {
            "@ytt:data" => Helper::Data,
            "@ytt:base64" => Helper::Base64,
            "@ytt:json" => Helper::Json,
            "@ytt:yaml" => Helper::Yaml,
            "@ytt:sha256" => Helper::Sha256,
            "@ytt:md5" => Helper::Md5,
            "@ytt:struct" => Helper::Struct,
            "@ytt:assert" => Helper::Assert,
            "@ytt:template" => Helper::Template,
            "@ytt:overlay" => Helper::Overlay,
            m if m.starts_with("@ytt:") => Helper::Other,
            _ => return None,
        })
    }
}

/// What a name stands for where an expression is translated.
#[derive(Debug, Clone)]
pub enum Binding {
    /// A loaded helper module.
    Helper(Helper, String),
    /// A Tera variable: a loop variable, a `set` one, a component's parameter.
    Local(Ty),
    /// A value already translated (an argument of an inlined function).
    Translated(Tera),
    /// A `def` whose body is YAML: a Tera component.
    Component {
        component: String,
        params: Vec<Param>,
        /// The module it was defined in, where its parameters' defaults resolve.
        module: usize,
    },
    /// A `def` whose body returns a value: inlined where it is called, in its own module's names.
    Inline {
        params: Vec<Param>,
        body: Expr,
        module: usize,
    },
    /// A constant of a module, inlined where it is used.
    Const { value: Expr, module: usize },
}

/// The names of one module (a template file, a `.lib.yml` or a `.star` file).
#[derive(Debug, Default, Clone)]
pub struct Module {
    pub names: HashMap<String, Binding>,
}

/// Every module's names, so inlined functions and constants resolve where they were written.
#[derive(Debug, Default)]
pub struct Modules {
    pub modules: Vec<Module>,
}

/// Names visible at one point: the innermost scope last.
pub struct Scope<'m> {
    pub modules: &'m Modules,
    pub module: usize,
    pub frames: Vec<HashMap<String, Binding>>,
    depth: usize,
}

/// Why an expression cannot be translated exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

type Result<T> = std::result::Result<T, Refusal>;

fn refuse<T>(why: impl Into<String>) -> Result<T> {
    Err(Refusal(why.into()))
}

/// Inlining deeper than this is a function calling itself.
const MAX_INLINE_DEPTH: usize = 32;

/// Tera's reserved words, which cannot be variable names.
const TERA_WORDS: &[&str] = &[
    "true", "false", "none", "null", "and", "or", "not", "is", "in", "if", "else", "loop", "self", "break", "continue",
    "values", "env", "secrets", "body",
];

/// A Starlark name as a Tera variable (kdeploy's context names are taken).
pub fn local_name(name: &str) -> String {
    if TERA_WORDS.contains(&name) || name.starts_with("__") {
        format!("ytt_{name}")
    } else {
        name.to_owned()
    }
}

impl<'m> Scope<'m> {
    pub fn new(modules: &'m Modules, module: usize) -> Self {
        Scope {
            modules,
            module,
            frames: vec![HashMap::new()],
            depth: 0,
        }
    }

    pub fn bind(&mut self, name: &str, binding: Binding) {
        self.frames
            .last_mut()
            .expect("a frame")
            .insert(name.to_owned(), binding);
    }

    pub fn lookup(&self, name: &str) -> Option<Binding> {
        for frame in self.frames.iter().rev() {
            if let Some(b) = frame.get(name) {
                return Some(b.clone());
            }
        }
        self.modules.modules.get(self.module)?.names.get(name).cloned()
    }

    /// Whether `name` is bound in a frame below the innermost one or in the module.
    pub fn bound_outside_innermost(&self, name: &str) -> bool {
        let n = self.frames.len();
        self.frames[..n.saturating_sub(1)].iter().any(|f| f.contains_key(name))
            || self
                .modules
                .modules
                .get(self.module)
                .is_some_and(|m| m.names.contains_key(name))
    }

    fn helper_of(&self, e: &Expr) -> Option<Helper> {
        match e {
            Expr::Name(n) => match self.lookup(n) {
                Some(Binding::Helper(h, _)) => Some(h),
                _ => None,
            },
            _ => None,
        }
    }

    /// `data.values` (or `data.values.x…`'s base).
    fn is_data_values(&self, e: &Expr) -> bool {
        matches!(e, Expr::Attr(base, name) if name == "values" && self.helper_of(base) == Some(Helper::Data))
    }

    /// Translates an expression.
    pub fn expr(&mut self, e: &Expr) -> Result<Tera> {
        match e {
            Expr::Name(n) => self.name(n),
            Expr::Int(i) => Ok(Tera::new(i.to_string(), Ty::Int)),
            Expr::Float(f) => refuse(format!(
                "the float literal {f}: ytt (Starlark) and kdeploy write floats differently"
            )),
            Expr::Str(s) => Ok(Tera::new(string_literal(s), Ty::Str)),
            Expr::Bool(b) => Ok(Tera::new(if *b { "true" } else { "false" }, Ty::Bool)),
            Expr::None => Ok(Tera::new("none", Ty::Null)),
            Expr::List(items) => {
                let items = items
                    .iter()
                    .map(|i| self.expr(i).map(|t| t.text))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tera::new(format!("[{}]", items.join(", ")), Ty::List))
            }
            Expr::Tuple(_) => refuse("a tuple (only a list, or a tuple of format arguments, converts)"),
            Expr::Dict(entries) if entries.iter().all(|(k, _)| matches!(k, Expr::Str(_))) => {
                let mut out = Vec::new();
                for (k, v) in entries {
                    let Expr::Str(key) = k else { unreachable!("string keys") };
                    out.push(format!("{}: {}", string_literal(key), self.expr(v)?.text));
                }
                Ok(Tera::new(format!("{{{}}}", out.join(", ")), Ty::Map))
            }
            Expr::Dict(entries) => {
                // Tera's map literals take literal keys: computed ones go through starlark_dict.
                let mut pairs = Vec::new();
                for (k, v) in entries {
                    pairs.push(format!("[{}, {}]", self.expr(k)?.text, self.expr(v)?.text));
                }
                Ok(Tera::new(format!("[{}] | starlark_dict", pairs.join(", ")), Ty::Map))
            }
            Expr::Attr(base, name) => self.attr(base, name),
            Expr::Index(base, index) => {
                if self.helper_of(base).is_some() {
                    return refuse("indexing a module");
                }
                if matches!(**index, Expr::Int(i) if i < 0) {
                    return refuse("a negative index");
                }
                let b = self.value_of(base)?;
                let i = self.expr(index)?;
                Ok(Tera::new(format!("{}[{}]", b.base(), i.text), Ty::Unknown))
            }
            Expr::Call(callee, args) => self.call(callee, args),
            Expr::Not(inner) => {
                let i = self.expr(inner)?;
                Ok(Tera::new(format!("not {}", i.term()), Ty::Bool))
            }
            Expr::Neg(inner) => {
                let i = self.expr(inner)?;
                Ok(Tera::new(format!("0 - {}", i.term()), Ty::Int))
            }
            Expr::Binary(op, a, b) => self.binary(*op, a, b),
            Expr::Cond { then, cond, otherwise } => {
                let t = self.expr(then)?;
                let c = self.expr(cond)?;
                let o = self.expr(otherwise)?;
                let ty = if t.ty == o.ty { t.ty } else { Ty::Unknown };
                Ok(Tera::new(format!("{} if {} else {}", t.term(), c.term(), o.term()), ty))
            }
        }
    }

    /// An expression that must be a value (not a module or a function).
    fn value_of(&mut self, e: &Expr) -> Result<Tera> {
        self.expr(e)
    }

    fn name(&mut self, n: &str) -> Result<Tera> {
        match self.lookup(n) {
            Some(Binding::Local(ty)) => Ok(Tera::new(local_name(n), ty)),
            Some(Binding::Translated(t)) => Ok(t),
            Some(Binding::Const { value, module }) => self.in_module(module, |s| s.expr(&value)),
            Some(Binding::Helper(_, module)) => refuse(format!("the module {module} used as a value")),
            Some(Binding::Component { .. }) | Some(Binding::Inline { .. }) => {
                refuse(format!("the function {n} used as a value (only calls convert)"))
            }
            None => refuse(format!(
                "{n}, which is not defined where it is used (or is a Starlark built-in the converter does not take)"
            )),
        }
    }

    /// Translates `e` with the names of `module` (a default where its function was written).
    pub fn expr_in_module(&mut self, module: usize, e: &Expr) -> Result<Tera> {
        self.in_module(module, |s| s.expr(e))
    }

    fn in_module<T>(&mut self, module: usize, f: impl FnOnce(&mut Scope<'m>) -> Result<T>) -> Result<T> {
        if self.depth >= MAX_INLINE_DEPTH {
            return refuse("functions or constants that refer to themselves");
        }
        let mut inner = Scope {
            modules: self.modules,
            module,
            frames: vec![HashMap::new()],
            depth: self.depth + 1,
        };
        f(&mut inner)
    }

    fn attr(&mut self, base: &Expr, name: &str) -> Result<Tera> {
        if let Some(h) = self.helper_of(base) {
            return match (h, name) {
                (Helper::Data, "values") => Ok(Tera::new("values", Ty::Map)),
                (Helper::Data, other) => refuse(format!("data.{other} (only data.values converts)")),
                _ => refuse(format!("the module function {name} used as a value")),
            };
        }
        let b = self.value_of(base)?;
        Ok(Tera::new(attribute(&b.base(), name), Ty::Unknown))
    }

    fn call(&mut self, callee: &Expr, args: &[Arg]) -> Result<Tera> {
        match callee {
            Expr::Name(n) => match self.lookup(n) {
                Some(Binding::Inline { params, body, module }) => {
                    let bound = self.bind_args(n, &params, args)?;
                    self.in_module(module, |s| {
                        for (name, value) in bound {
                            s.bind(&name, Binding::Translated(value));
                        }
                        s.expr(&body)
                    })
                }
                Some(Binding::Component { .. }) => refuse(format!(
                    "the fragment function {n}() inside an expression (it converts as a node's whole value)"
                )),
                Some(_) => refuse(format!("calling {n}, which is not a function")),
                None => self.builtin(n, args),
            },
            Expr::Attr(base, method) => {
                if let Some(h) = self.helper_of(base) {
                    return self.helper_call(h, method, args);
                }
                if self.is_data_values(base)
                    || matches!(
                        **base,
                        Expr::Attr(..) | Expr::Name(_) | Expr::Index(..) | Expr::Str(_) | Expr::Call(..)
                    )
                {
                    return self.method(base, method, args);
                }
                refuse(format!(".{method}() on this expression"))
            }
            _ => refuse("calling the result of an expression"),
        }
    }

    fn bind_args(&mut self, function: &str, params: &[Param], args: &[Arg]) -> Result<Vec<(String, Tera)>> {
        let mut bound: Vec<(String, Option<Tera>)> = params.iter().map(|p| (p.name.clone(), None)).collect();
        for (i, arg) in args.iter().enumerate() {
            let slot = match &arg.name {
                Some(name) => bound.iter().position(|(p, _)| p == name),
                None => (i < bound.len()).then_some(i),
            };
            let Some(slot) = slot else {
                return refuse(format!("a call of {function}() with an argument it does not take"));
            };
            if bound[slot].1.is_some() {
                return refuse(format!("a call of {function}() that gives an argument twice"));
            }
            bound[slot].1 = Some(self.expr(&arg.value)?);
        }
        bound
            .into_iter()
            .zip(params)
            .map(|((name, value), param)| match (value, &param.default) {
                (Some(v), _) => Ok((name, v)),
                (None, Some(default)) => Ok((name, self.expr(default)?)),
                (None, None) => refuse(format!("a call of {function}() without its argument {name}")),
            })
            .collect()
    }

    fn positional(&mut self, function: &str, args: &[Arg], min: usize, max: usize) -> Result<Vec<Tera>> {
        if args.iter().any(|a| a.name.is_some()) || args.len() < min || args.len() > max {
            return refuse(format!("{function}() with these arguments"));
        }
        args.iter().map(|a| self.expr(&a.value)).collect()
    }

    fn builtin(&mut self, name: &str, args: &[Arg]) -> Result<Tera> {
        match name {
            "str" => {
                let [x] = self.positional("str", args, 1, 1)?.try_into().expect("one");
                Ok(x.as_string())
            }
            "int" => {
                let [x] = self.positional("int", args, 1, 1)?.try_into().expect("one");
                Ok(match x.ty {
                    Ty::Int => x,
                    _ => Tera::new(format!("{} | starlark_int", x.term()), Ty::Int),
                })
            }
            "len" => {
                let [x] = self.positional("len", args, 1, 1)?.try_into().expect("one");
                Ok(match x.ty {
                    Ty::List | Ty::Map => Tera::new(format!("{} | length", x.term()), Ty::Int),
                    _ => Tera::new(format!("{} | starlark_len", x.term()), Ty::Int),
                })
            }
            "bool" => {
                let [x] = self.positional("bool", args, 1, 1)?.try_into().expect("one");
                Ok(Tera::new(format!("true if {} else false", x.term()), Ty::Bool))
            }
            "range" => {
                let a = self.positional("range", args, 1, 3)?;
                let text = match a.as_slice() {
                    [end] => format!("range(end={})", end.text),
                    [start, end] => format!("range(start={}, end={})", start.text, end.text),
                    [start, end, step] => {
                        format!("range(start={}, end={}, step_by={})", start.text, end.text, step.text)
                    }
                    _ => unreachable!("one to three"),
                };
                Ok(Tera::new(text, Ty::List))
            }
            "hasattr" => {
                let [obj, attr] = args else {
                    return refuse("hasattr() with these arguments");
                };
                let Expr::Str(key) = &attr.value else {
                    return refuse("hasattr() with a name that is not a string literal");
                };
                let o = self.value_of(&obj.value)?;
                Ok(Tera::new(
                    format!("{}[{}] is defined", o.base(), string_literal(key)),
                    Ty::Bool,
                ))
            }
            "getattr" => {
                let (obj, key, default) = match args {
                    [o, k] => (o, k, None),
                    [o, k, d] => (o, k, Some(d)),
                    _ => return refuse("getattr() with these arguments"),
                };
                let Expr::Str(key) = &key.value else {
                    return refuse("getattr() with a name that is not a string literal");
                };
                let o = self.value_of(&obj.value)?;
                match default {
                    None => Ok(Tera::new(format!("{}[{}]", o.base(), string_literal(key)), Ty::Unknown)),
                    Some(d) => {
                        let d = self.expr(&d.value)?;
                        Ok(Tera::new(
                            format!("{} | get(key={}, default={})", o.term(), string_literal(key), d.text),
                            Ty::Unknown,
                        ))
                    }
                }
            }
            "fail" => {
                let [message] = self.positional("fail", args, 1, 1)?.try_into().expect("one");
                Ok(Tera::new(
                    format!("throw(message={})", message.as_string().text),
                    Ty::Unknown,
                ))
            }
            "dict" if args.iter().all(|a| a.name.is_some()) => self.named_map(args),
            other => refuse(format!("the built-in {other}()")),
        }
    }

    /// `dict(a=1)` and `struct.make(a=1)`: a map of the named arguments.
    fn named_map(&mut self, args: &[Arg]) -> Result<Tera> {
        let mut out = Vec::new();
        for a in args {
            let v = self.expr(&a.value)?;
            out.push(format!(
                "{}: {}",
                string_literal(a.name.as_deref().unwrap_or_default()),
                v.text
            ));
        }
        Ok(Tera::new(format!("{{{}}}", out.join(", ")), Ty::Map))
    }

    fn helper_call(&mut self, helper: Helper, function: &str, args: &[Arg]) -> Result<Tera> {
        let one = |s: &mut Self, what: &str| -> Result<Tera> {
            let [x] = s.positional(what, args, 1, 1)?.try_into().expect("one");
            Ok(x)
        };
        match (helper, function) {
            (Helper::Base64, "encode") => {
                let x = one(self, "base64.encode")?;
                Ok(Tera::new(format!("{} | b64encode", x.as_string().term()), Ty::Str))
            }
            (Helper::Base64, "decode") => {
                let x = one(self, "base64.decode")?;
                Ok(Tera::new(format!("{} | b64decode", x.term()), Ty::Str))
            }
            (Helper::Sha256, "sum") => {
                let x = one(self, "sha256.sum")?;
                Ok(Tera::new(format!("{} | sha256", x.as_string().term()), Ty::Str))
            }
            (Helper::Json, "encode") => {
                let x = one(self, "json.encode")?;
                Ok(Tera::new(format!("{} | ytt_json", x.term()), Ty::Str))
            }
            (Helper::Struct, "make") => {
                if args.iter().any(|a| a.name.is_none()) {
                    return refuse("struct.make() with positional arguments");
                }
                self.named_map(args)
            }
            (Helper::Struct, "encode" | "decode") => one(self, "struct.encode"),
            (Helper::Assert, "fail") => {
                let x = one(self, "assert.fail")?;
                Ok(Tera::new(format!("throw(message={})", x.as_string().text), Ty::Unknown))
            }
            (Helper::Data, other) => refuse(format!("data.{other}() (files read by templates do not convert)")),
            (Helper::Yaml, _) => refuse("yaml.encode/decode (ytt's YAML layout is not kdeploy's to_yaml)"),
            (Helper::Md5, "sum") => {
                let x = one(self, "md5.sum")?;
                Ok(Tera::new(format!("{} | md5", x.as_string().term()), Ty::Str))
            }
            (Helper::Template, _) => refuse(format!(
                "template.{function}() here (template.replace converts as a map item's whole value)"
            )),
            (Helper::Overlay, _) => refuse(format!("overlay.{function}() in a template")),
            (_, _) => refuse(format!("the helper function {function}()")),
        }
    }

    fn method(&mut self, receiver: &Expr, method: &str, args: &[Arg]) -> Result<Tera> {
        // `"sep".join(list)` and `"…{}…".format(…)` need the literal receiver.
        if method == "format" {
            let Expr::Str(template) = receiver else {
                return refuse(".format() on something other than a string literal");
            };
            return self.format(template, args);
        }
        let r = self.value_of(receiver)?;
        let arguments = |s: &mut Self, min: usize, max: usize| s.positional(method, args, min, max);
        let out = match method {
            "upper" | "lower" => {
                arguments(self, 0, 0)?;
                Tera::new(format!("{} | {method}", r.term()), Ty::Str)
            }
            "strip" | "lstrip" | "rstrip" => {
                arguments(self, 0, 0)?;
                let filter = match method {
                    "strip" => "trim",
                    "lstrip" => "trim_start",
                    _ => "trim_end",
                };
                Tera::new(format!("{} | {filter}", r.term()), Ty::Str)
            }
            "replace" => {
                let [from, to] = arguments(self, 2, 2)?.try_into().expect("two");
                Tera::new(
                    format!("{} | replace(from={}, to={})", r.term(), from.text, to.text),
                    Ty::Str,
                )
            }
            "startswith" | "endswith" => {
                let [x] = arguments(self, 1, 1)?.try_into().expect("one");
                let test = if method == "startswith" {
                    "starting_with"
                } else {
                    "ending_with"
                };
                Tera::new(format!("{} is {test}(pat={})", r.term(), x.text), Ty::Bool)
            }
            "split" => {
                let [sep] = arguments(self, 1, 1)?.try_into().expect("one");
                if sep.text == "\"\"" {
                    return refuse(".split(\"\") (an empty separator is an error in Starlark)");
                }
                Tera::new(format!("{} | split(pat={})", r.term(), sep.text), Ty::List)
            }
            "join" => {
                let [list] = arguments(self, 1, 1)?.try_into().expect("one");
                if r.ty != Ty::Str {
                    return refuse(".join() on something not known to be a string");
                }
                Tera::new(format!("{} | join(sep={})", list.term(), r.text), Ty::Str)
            }
            "get" => {
                let a = arguments(self, 1, 2)?;
                let default = a.get(1).map_or("none".to_owned(), |d| d.text.clone());
                Tera::new(
                    format!("{} | get(key={}, default={})", r.term(), a[0].text, default),
                    Ty::Unknown,
                )
            }
            "keys" => {
                arguments(self, 0, 0)?;
                Tera::new(format!("{} | keys", r.term()), Ty::List)
            }
            "values" => {
                arguments(self, 0, 0)?;
                Tera::new(format!("{} | values", r.term()), Ty::List)
            }
            other => return refuse(format!("the method .{other}()")),
        };
        Ok(out)
    }

    /// `"a-{}-{name}".format(x, name=y)`: the literal pieces joined with `~`, each argument as `str()`
    /// writes it.
    fn format(&mut self, template: &str, args: &[Arg]) -> Result<Tera> {
        let mut pieces: Vec<String> = Vec::new();
        let mut literal = String::new();
        let mut next_auto = 0usize;
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut field = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => field.push(c),
                            None => return refuse("a .format() string with an unclosed {"),
                        }
                    }
                    if field.contains(['!', ':', '.', '[']) {
                        return refuse(format!(
                            "the format field {{{field}}} (conversions and specs do not convert)"
                        ));
                    }
                    let arg = if field.is_empty() {
                        next_auto += 1;
                        args.iter().filter(|a| a.name.is_none()).nth(next_auto - 1)
                    } else if let Ok(n) = field.parse::<usize>() {
                        args.iter().filter(|a| a.name.is_none()).nth(n)
                    } else {
                        args.iter().find(|a| a.name.as_deref() == Some(field.as_str()))
                    };
                    let Some(arg) = arg else {
                        return refuse(format!("a .format() field {{{field}}} with no argument"));
                    };
                    if !literal.is_empty() {
                        pieces.push(string_literal(&std::mem::take(&mut literal)));
                    }
                    pieces.push(self.expr(&arg.value)?.as_string().term());
                }
                '}' => return refuse("a .format() string with a single }"),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() || pieces.is_empty() {
            pieces.push(string_literal(&literal));
        }
        Ok(Tera::new(pieces.join(" ~ "), Ty::Str))
    }

    /// `"%s-%d" % (a, b)`.
    fn percent(&mut self, template: &str, args: &Expr) -> Result<Tera> {
        let items: Vec<&Expr> = match args {
            Expr::Tuple(items) => items.iter().collect(),
            other => vec![other],
        };
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut next = 0;
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => literal.push('%'),
                Some(spec @ ('s' | 'd')) => {
                    let Some(item) = items.get(next) else {
                        return refuse("a % format with fewer arguments than fields");
                    };
                    next += 1;
                    let value = self.expr(item)?;
                    if spec == 'd' && value.ty == Ty::Str {
                        return refuse("%d of a string");
                    }
                    if !literal.is_empty() {
                        pieces.push(string_literal(&std::mem::take(&mut literal)));
                    }
                    let text = if spec == 'd' && value.ty != Ty::Int {
                        format!(
                            "({0} if {0} is integer else throw(message={1})) | starlark_str",
                            value.base(),
                            string_literal("%d takes an integer, as in Starlark")
                        )
                    } else {
                        value.as_string().term()
                    };
                    pieces.push(if is_simple(&text) { text } else { format!("({text})") });
                }
                Some(other) => return refuse(format!("the % format %{other} (only %s and %d convert)")),
                None => return refuse("a % format ending in %"),
            }
        }
        if next != items.len() {
            return refuse("a % format with more arguments than fields");
        }
        if !literal.is_empty() || pieces.is_empty() {
            pieces.push(string_literal(&literal));
        }
        Ok(Tera::new(pieces.join(" ~ "), Ty::Str))
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Result<Tera> {
        if op == BinOp::Mod
            && let Expr::Str(template) = a
        {
            return self.percent(template, b);
        }
        let left = self.expr(a)?;
        let right = match (op, b) {
            (BinOp::In | BinOp::NotIn, Expr::Tuple(items)) => self.expr(&Expr::List(items.clone()))?,
            _ => self.expr(b)?,
        };
        let (l, r) = (left.term(), right.term());
        let out = match op {
            BinOp::Or | BinOp::And => {
                let ty = if left.ty == right.ty { left.ty } else { Ty::Unknown };
                Tera::new(format!("{l} {} {r}", op.symbol()), ty)
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                Tera::new(format!("{l} {} {r}", op.symbol()), Ty::Bool)
            }
            BinOp::In => Tera::new(format!("{l} in {r}"), Ty::Bool),
            BinOp::NotIn => Tera::new(format!("{l} not in {r}"), Ty::Bool),
            BinOp::Add => match (left.ty, right.ty) {
                (Ty::Str, Ty::Str) => Tera::new(format!("{l} ~ {r}"), Ty::Str),
                (Ty::Int, Ty::Int) => Tera::new(format!("{l} + {r}"), Ty::Int),
                (lt, rt) => {
                    let ty = match (lt, rt) {
                        (Ty::Str, _) | (_, Ty::Str) => Ty::Str,
                        (Ty::List, _) | (_, Ty::List) => Ty::List,
                        (Ty::Int, _) | (_, Ty::Int) => Ty::Int,
                        _ => Ty::Unknown,
                    };
                    Tera::new(format!("{l} | starlark_add(other={})", right.text), ty)
                }
            },
            BinOp::Sub => Tera::new(format!("{l} - {r}"), Ty::Int),
            BinOp::Mul => {
                if left.ty != Ty::Int || right.ty != Ty::Int {
                    return refuse("* on values not known to be integers (Starlark repeats strings and lists)");
                }
                Tera::new(format!("{l} * {r}"), Ty::Int)
            }
            BinOp::Mod => {
                if left.ty != Ty::Int || right.ty != Ty::Int {
                    return refuse("% on values not known to be integers (or a format string that is not a literal)");
                }
                Tera::new(format!("{l} % {r}"), Ty::Int)
            }
            BinOp::FloorDiv => {
                if left.ty != Ty::Int || right.ty != Ty::Int {
                    return refuse("// on values not known to be integers");
                }
                Tera::new(format!("{l} // {r}"), Ty::Int)
            }
            BinOp::Div => return refuse("/ (Starlark divides into a float)"),
            BinOp::BitOr => return refuse("| (bitwise or, or a set union)"),
        };
        Ok(out)
    }
}

/// `base.name`, or `base["name"]` when `name` is not a Tera identifier.
fn attribute(base: &str, name: &str) -> String {
    if TERA_WORDS.contains(&name) || base.starts_with('(') {
        format!("{base}[{}]", string_literal(name))
    } else {
        format!("{base}.{name}")
    }
}

/// A Tera string literal holding exactly `s`.
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::super::starlark::parse_expr;
    use super::*;

    fn translate(text: &str) -> std::result::Result<String, String> {
        let mut module = Module::default();
        module
            .names
            .insert("data".into(), Binding::Helper(Helper::Data, "@ytt:data".into()));
        module
            .names
            .insert("base64".into(), Binding::Helper(Helper::Base64, "@ytt:base64".into()));
        module.names.insert("x".into(), Binding::Local(Ty::Unknown));
        let modules = Modules { modules: vec![module] };
        let mut scope = Scope::new(&modules, 0);
        scope.expr(&parse_expr(text).unwrap()).map(|t| t.text).map_err(|r| r.0)
    }

    #[test]
    fn expressions_translate_to_the_same_value() {
        assert_eq!(translate("data.values.app.name").unwrap(), "values.app.name");
        assert_eq!(
            translate("\"a-\" + data.values.n").unwrap(),
            "\"a-\" | starlark_add(other=values.n)"
        );
        assert_eq!(
            translate("\"a-\" + str(data.values.n)").unwrap(),
            "\"a-\" ~ (values.n | starlark_str)"
        );
        assert_eq!(translate("x or \"d\"").unwrap(), "x or \"d\"");
        assert_eq!(
            translate("\"{}:{}\".format(x, 80)").unwrap(),
            "(x | starlark_str) ~ \":\" ~ (80 | starlark_str)"
        );
        assert_eq!(
            translate("\"%s-%s\" % (x, \"b\")").unwrap(),
            "(x | starlark_str) ~ \"-\" ~ \"b\""
        );
        assert_eq!(translate("x if x else 1").unwrap(), "x if x else 1");
        assert_eq!(translate("x in (\"a\", \"b\")").unwrap(), "x in [\"a\", \"b\"]");
        assert_eq!(translate("base64.encode(x)").unwrap(), "(x | starlark_str) | b64encode");
        assert_eq!(
            translate("x.upper().replace(\"A\", \"b\")").unwrap(),
            "(x | upper) | replace(from=\"A\", to=\"b\")"
        );
        assert_eq!(
            translate("hasattr(data.values, \"k\")").unwrap(),
            "values[\"k\"] is defined"
        );
    }

    #[test]
    fn what_would_differ_is_refused() {
        for (text, why) in [
            ("1.5", "float"),
            ("x / 2", "float"),
            ("x * 2", "repeats"),
            ("data.read(\"f\")", "files"),
            ("sorted(x)", "sorted"),
            ("x.title()", "title"),
            ("y", "not defined"),
        ] {
            let e = translate(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
