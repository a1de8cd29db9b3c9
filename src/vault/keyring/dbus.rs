//! Just enough of the D-Bus wire protocol for the Secret Service: connecting to the session bus
//! (`unix:path=` and `unix:abstract=` addresses), `EXTERNAL` authentication, method calls with
//! their replies and errors, and waiting for one signal. Messages are marshalled and read per the
//! D-Bus specification, in either byte order; every read is bounded in size and in time.
//!
//! Buffers that may hold a secret (a call's body, a reply) are zeroed when dropped.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// Larger messages are refused: the Secret Service's answers are small, and a bus that sends more is
/// not one to follow.
const MAX_MESSAGE: usize = 4 << 20;
/// The D-Bus reference implementation's default method-call timeout.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(25);
/// Signals kept while a reply is awaited; older ones are dropped past this.
const MAX_QUEUED_SIGNALS: usize = 16;
/// Nesting deeper than the specification's 32 arrays and 32 structs is malformed.
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No session bus to connect to, or none answered.
    #[error("{0}")]
    NoBus(String),
    #[error("the session bus: {0}")]
    Io(#[from] std::io::Error),
    #[error("the session bus sent a malformed message: {0}")]
    Protocol(String),
    /// An error reply (`org.freedesktop.Secret.Error.IsLocked`, ...).
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

fn malformed(what: impl Into<String>) -> Error {
    Error::Protocol(what.into())
}

/// The body of a message being built; alignment is relative to the start of the body, which the
/// header pads to a multiple of eight.
#[derive(Default)]
pub struct Body {
    bytes: Zeroizing<Vec<u8>>,
}

impl Body {
    fn pad(&mut self, align: usize) {
        while !self.bytes.len().is_multiple_of(align) {
            self.bytes.push(0);
        }
    }

    pub fn byte(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.pad(4);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn boolean(&mut self, value: bool) -> &mut Self {
        self.u32(u32::from(value))
    }

    /// A `s` or an `o`.
    pub fn string(&mut self, value: &str) -> &mut Self {
        let length = u32::try_from(value.len()).expect("strings kdeploy sends are short");
        self.u32(length);
        self.bytes.extend_from_slice(value.as_bytes());
        self.bytes.push(0);
        self
    }

    pub fn signature(&mut self, value: &str) -> &mut Self {
        let length = u8::try_from(value.len()).expect("signatures kdeploy sends are short");
        self.bytes.push(length);
        self.bytes.extend_from_slice(value.as_bytes());
        self.bytes.push(0);
        self
    }

    /// An array whose elements align to `element_align`, written by `elements`.
    pub fn array(&mut self, element_align: usize, elements: impl FnOnce(&mut Body)) -> &mut Self {
        self.u32(0);
        let length_at = self.bytes.len() - 4;
        self.pad(element_align);
        let start = self.bytes.len();
        elements(self);
        let length = u32::try_from(self.bytes.len() - start).expect("arrays kdeploy sends are short");
        self.bytes[length_at..length_at + 4].copy_from_slice(&length.to_le_bytes());
        self
    }

    /// `ay`.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.array(1, |body| body.bytes.extend_from_slice(value))
    }

    /// A struct or a dict entry.
    pub fn structure(&mut self, fields: impl FnOnce(&mut Body)) -> &mut Self {
        self.pad(8);
        fields(self);
        self
    }

    /// A variant holding one value of type `signature`.
    pub fn variant(&mut self, signature: &str, value: impl FnOnce(&mut Body)) -> &mut Self {
        self.signature(signature);
        value(self);
        self
    }
}

/// A value read from a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    /// `s`, `o` and `g`.
    Str(String),
    /// `ay`, kept apart so a secret can be zeroed.
    Bytes(Zeroizing<Vec<u8>>),
    Array(Vec<Value>),
    /// A struct's fields, or a dict entry's key and value.
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The strings of an `as` or `ao`.
    pub fn as_strings(&self) -> Option<Vec<String>> {
        match self {
            Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => None,
        }
    }
}

/// The first complete type of `signature`, and the rest.
fn split_type(signature: &str) -> Result<(&str, &str), Error> {
    let bytes = signature.as_bytes();
    let mut end = 0;
    // Opening brackets still to close; `a` takes the next complete type.
    let mut open = Vec::new();
    loop {
        let Some(&c) = bytes.get(end) else {
            return Err(malformed(format!("incomplete signature {signature:?}")));
        };
        end += 1;
        match c {
            b'a' => continue,
            b'(' | b'{' => {
                open.push(if c == b'(' { b')' } else { b'}' });
                if open.len() > MAX_DEPTH {
                    return Err(malformed("signature nested too deeply"));
                }
                continue;
            }
            b')' | b'}' => {
                if open.pop() != Some(c) {
                    return Err(malformed(format!("unbalanced signature {signature:?}")));
                }
            }
            b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b'h' | b's' | b'o' | b'g' | b'v' => {}
            other => return Err(malformed(format!("unknown type code {:?}", other as char))),
        }
        if open.is_empty() {
            return Ok(signature.split_at(end));
        }
    }
}

fn alignment(type_code: u8) -> usize {
    match type_code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Reads values from a message; positions are relative to `base`, the offset alignment counts from.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.position.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| malformed("a value runs past the end of its message"))?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn align(&mut self, align: usize) -> Result<(), Error> {
        let padding = self.position.next_multiple_of(align) - self.position;
        self.take(padding).map(|_| ())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.align(N)?;
        let mut out: [u8; N] = self.take(N)?.try_into().expect("took N bytes");
        if self.big_endian {
            out.reverse();
        }
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, Error> {
        self.fixed::<4>().map(u32::from_le_bytes)
    }

    fn text(&mut self, length: usize) -> Result<String, Error> {
        let bytes = self.take(length + 1)?;
        if bytes[length] != 0 {
            return Err(malformed("a string is not terminated"));
        }
        String::from_utf8(bytes[..length].to_vec()).map_err(|_| malformed("a string is not UTF-8"))
    }

    fn signature(&mut self) -> Result<String, Error> {
        let length = self.take(1)?[0] as usize;
        self.text(length)
    }

    /// One value of the complete type `signature`.
    fn value(&mut self, signature: &str, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(malformed("values nested too deeply"));
        }
        let code = signature.as_bytes()[0];
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                other => return Err(malformed(format!("boolean {other}"))),
            },
            b'n' => Value::Int(i16::from_le_bytes(self.fixed()?).into()),
            b'q' => Value::UInt(u16::from_le_bytes(self.fixed()?).into()),
            b'i' => Value::Int(i32::from_le_bytes(self.fixed()?).into()),
            b'u' | b'h' => Value::UInt(self.u32()?.into()),
            b'x' => Value::Int(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::UInt(u64::from_le_bytes(self.fixed()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.fixed()?)),
            b's' | b'o' => {
                let length = self.u32()? as usize;
                Value::Str(self.text(length)?)
            }
            b'g' => Value::Str(self.signature()?),
            b'v' => {
                let inner = self.signature()?;
                let (one, rest) = split_type(&inner)?;
                if !rest.is_empty() {
                    return Err(malformed(format!("a variant of more than one type: {inner:?}")));
                }
                Value::Variant(Box::new(self.value(one, depth + 1)?))
            }
            b'a' => {
                let length = self.u32()? as usize;
                let element = &signature[1..];
                self.align(alignment(element.as_bytes()[0]))?;
                let end = self
                    .position
                    .checked_add(length)
                    .filter(|&end| end <= self.bytes.len())
                    .ok_or_else(|| malformed("an array runs past the end of its message"))?;
                if element == "y" {
                    let bytes = Zeroizing::new(self.take(length)?.to_vec());
                    return Ok(Value::Bytes(bytes));
                }
                let mut items = Vec::new();
                while self.position < end {
                    items.push(self.value(element, depth + 1)?);
                }
                if self.position != end {
                    return Err(malformed("an array's elements overrun its length"));
                }
                Value::Array(items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let mut inner = &signature[1..signature.len() - 1];
                let mut fields = Vec::new();
                while !inner.is_empty() {
                    let (one, rest) = split_type(inner)?;
                    fields.push(self.value(one, depth + 1)?);
                    inner = rest;
                }
                Value::Struct(fields)
            }
            other => return Err(malformed(format!("unknown type code {:?}", other as char))),
        })
    }

    /// All the values of `signature`, in order.
    fn values(&mut self, mut signature: &str) -> Result<Vec<Value>, Error> {
        let mut values = Vec::new();
        while !signature.is_empty() {
            let (one, rest) = split_type(signature)?;
            values.push(self.value(one, 0)?);
            signature = rest;
        }
        Ok(values)
    }
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// A message received, with the header fields kdeploy looks at.
pub struct Message {
    kind: u8,
    reply_serial: Option<u32>,
    path: Option<String>,
    interface: Option<String>,
    member: Option<String>,
    error_name: Option<String>,
    signature: String,
    big_endian: bool,
    body: Zeroizing<Vec<u8>>,
}

impl Message {
    /// The body's values.
    pub fn values(&self) -> Result<Vec<Value>, Error> {
        Reader {
            bytes: &self.body,
            position: 0,
            big_endian: self.big_endian,
        }
        .values(&self.signature)
    }

    fn into_result(self) -> Result<Message, Error> {
        if self.kind != ERROR {
            return Ok(self);
        }
        let name = self.error_name.clone().unwrap_or_else(|| "an unnamed error".to_owned());
        // An error's first argument, when it is a string, is its message.
        let message = match self.values() {
            Ok(values) => values.first().and_then(Value::as_str).unwrap_or_default().to_owned(),
            Err(_) => String::new(),
        };
        Err(Error::Remote { name, message })
    }
}

/// One connection to the session bus.
pub struct Connection {
    stream: UnixStream,
    serial: u32,
    /// Signals that arrived while waiting for a reply, the newest [`MAX_QUEUED_SIGNALS`].
    signals: std::collections::VecDeque<Message>,
}

/// Where the session bus is: `DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`.
fn session_addresses(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, Error> {
    if let Some(address) = env("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty()) {
        return Ok(address
            .split(';')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect());
    }
    if let Some(runtime) = env("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let socket = std::path::Path::new(&runtime).join("bus");
        if socket.exists() {
            return Ok(vec![format!("unix:path={}", socket.display())]);
        }
    }
    Err(Error::NoBus(
        "no session bus (DBUS_SESSION_BUS_ADDRESS is not set)".to_owned(),
    ))
}

/// A `key=value` of a D-Bus address, with its `%XX` escapes undone.
fn address_value(address: &str, key: &str) -> Option<Vec<u8>> {
    let (_, options) = address.split_once(':')?;
    let value = options
        .split(',')
        .find_map(|option| option.strip_prefix(key)?.strip_prefix('='))?;
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: String = [bytes.next()?, bytes.next()?].iter().map(|&b| b as char).collect();
            out.push(u8::from_str_radix(&hex, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn connect(address: &str) -> Result<UnixStream, String> {
    use std::os::unix::ffi::OsStrExt;
    if !address.starts_with("unix:") {
        return Err(format!("{address}: only unix: addresses are supported"));
    }
    if let Some(path) = address_value(address, "path") {
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
        return UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()));
    }
    if let Some(name) = address_value(address, "abstract") {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let socket = std::os::unix::net::SocketAddr::from_abstract_name(&name).map_err(|e| e.to_string())?;
            return UnixStream::connect_addr(&socket).map_err(|e| format!("{address}: {e}"));
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(format!("{address}: abstract sockets exist only on Linux"));
        }
    }
    Err(format!("{address}: neither path= nor abstract="))
}

impl Connection {
    /// Connects to the session bus, authenticates and says `Hello`.
    pub fn session(env: &dyn Fn(&str) -> Option<String>) -> Result<Connection, Error> {
        let mut failures = Vec::new();
        for address in session_addresses(env)? {
            match connect(&address) {
                Ok(stream) => {
                    let mut connection = Connection {
                        stream,
                        serial: 0,
                        signals: Default::default(),
                    };
                    connection.authenticate()?;
                    connection.call(
                        "org.freedesktop.DBus",
                        "/org/freedesktop/DBus",
                        "org.freedesktop.DBus",
                        "Hello",
                        "",
                        Body::default(),
                    )?;
                    return Ok(connection);
                }
                Err(failure) => failures.push(failure),
            }
        }
        Err(Error::NoBus(format!(
            "no session bus answered ({})",
            failures.join("; ")
        )))
    }

    fn authenticate(&mut self) -> Result<(), Error> {
        self.stream.set_read_timeout(Some(CALL_TIMEOUT))?;
        self.stream.set_write_timeout(Some(CALL_TIMEOUT))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let hex_uid = crate::util::hex(uid.to_string().as_bytes());
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {hex_uid}\r\n").as_bytes())?;
        let answer = self.auth_line()?;
        if !answer.starts_with("OK ") {
            return Err(Error::NoBus(format!(
                "the session bus refused EXTERNAL authentication ({answer})"
            )));
        }
        self.stream.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    /// One line of the authentication exchange, read byte by byte: the binary protocol follows it.
    fn auth_line(&mut self) -> Result<String, Error> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 1024 {
                return Err(malformed("an authentication line longer than 1 KiB"));
            }
            self.stream.read_exact(&mut byte).map_err(timeout_or_io(CALL_TIMEOUT))?;
            line.push(byte[0]);
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| malformed("an authentication line is not UTF-8"))
    }

    /// Calls `member` and returns its reply, or the error it answered with.
    pub fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        signature: &str,
        body: Body,
    ) -> Result<Message, Error> {
        self.serial += 1;
        let body_length = u32::try_from(body.bytes.len()).map_err(|_| malformed("a body over 4 GiB"))?;
        let mut message = Body::default();
        message
            .byte(b'l')
            .byte(METHOD_CALL)
            .byte(0)
            .byte(1)
            .u32(body_length)
            .u32(self.serial);
        message.array(8, |fields| {
            let mut field = |code: u8, signature: &str, value: &str| {
                fields.structure(|f| {
                    f.byte(code).variant(signature, |v| {
                        if signature == "g" {
                            v.signature(value);
                        } else {
                            v.string(value);
                        }
                    });
                });
            };
            field(1, "o", path);
            field(2, "s", interface);
            field(3, "s", member);
            field(6, "s", destination);
            if !signature.is_empty() {
                field(8, "g", signature);
            }
        });
        message.pad(8);
        message.bytes.extend_from_slice(&body.bytes);
        self.stream.write_all(&message.bytes)?;
        let serial = self.serial;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let message = self.receive(deadline, CALL_TIMEOUT)?;
            match message.kind {
                METHOD_RETURN | ERROR if message.reply_serial == Some(serial) => return message.into_result(),
                SIGNAL => {
                    if self.signals.len() == MAX_QUEUED_SIGNALS {
                        self.signals.pop_front();
                    }
                    self.signals.push_back(message);
                }
                _ => {}
            }
        }
    }

    /// Waits up to `timeout` for the signal `interface.member` from the object `path`.
    pub fn signal(&mut self, path: &str, interface: &str, member: &str, timeout: Duration) -> Result<Message, Error> {
        let matches = |m: &Message| {
            m.kind == SIGNAL
                && m.path.as_deref() == Some(path)
                && m.interface.as_deref() == Some(interface)
                && m.member.as_deref() == Some(member)
        };
        if let Some(at) = self.signals.iter().position(matches) {
            return Ok(self.signals.remove(at).expect("found at this position"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let message = self.receive(deadline, timeout)?;
            if matches(&message) {
                return Ok(message);
            }
        }
    }

    fn receive(&mut self, deadline: Instant, timeout: Duration) -> Result<Message, Error> {
        let mut fixed = [0u8; 16];
        self.read_until(&mut fixed, deadline, timeout)?;
        let big_endian = match fixed[0] {
            b'l' => false,
            b'B' => true,
            other => return Err(malformed(format!("byte order {other:#x}"))),
        };
        let word = |at: usize| {
            let bytes: [u8; 4] = fixed[at..at + 4].try_into().expect("four bytes");
            if big_endian {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        let body_length = word(4) as usize;
        let fields_length = word(12) as usize;
        let header_length = (16 + fields_length).next_multiple_of(8);
        if header_length + body_length > MAX_MESSAGE {
            return Err(malformed(format!("a message of {} bytes", header_length + body_length)));
        }
        let mut header = vec![0u8; header_length];
        header[..16].copy_from_slice(&fixed);
        self.read_until(&mut header[16..], deadline, timeout)?;
        let mut body = Zeroizing::new(vec![0u8; body_length]);
        self.read_until(&mut body, deadline, timeout)?;

        let mut reader = Reader {
            bytes: &header[..16 + fields_length],
            position: 12,
            big_endian,
        };
        let Value::Array(fields) = reader.value("a(yv)", 0)? else {
            unreachable!("a(yv) reads as an array")
        };
        let mut message = Message {
            kind: fixed[1],
            reply_serial: None,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            signature: String::new(),
            big_endian,
            body,
        };
        for field in fields {
            let Value::Struct(parts) = field else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(value))) = (parts.first(), parts.get(1)) else {
                continue;
            };
            let text = value.as_str().map(str::to_owned);
            match (code, value.as_ref()) {
                (1, _) => message.path = text,
                (2, _) => message.interface = text,
                (3, _) => message.member = text,
                (4, _) => message.error_name = text,
                (5, Value::UInt(serial)) => message.reply_serial = u32::try_from(*serial).ok(),
                (8, _) => message.signature = text.unwrap_or_default(),
                _ => {}
            }
        }
        Ok(message)
    }

    fn read_until(&mut self, buffer: &mut [u8], deadline: Instant, timeout: Duration) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buffer.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(timeout));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buffer[filled..]) {
                Ok(0) => return Err(Error::NoBus("the session bus closed the connection".to_owned())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_or_io(timeout)(e)),
            }
        }
        Ok(())
    }
}

fn timeout_or_io(timeout: Duration) -> impl Fn(std::io::Error) -> Error {
    move |e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::Timeout(timeout),
        _ => Error::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], signature: &str) -> Result<Vec<Value>, Error> {
        Reader {
            bytes,
            position: 0,
            big_endian: false,
        }
        .values(signature)
    }

    #[test]
    fn what_is_written_reads_back_with_the_same_alignment() {
        let mut body = Body::default();
        body.byte(7)
            .string("/org/freedesktop/secrets/session/1")
            .bytes(b"\x00secret\xff")
            .array(8, |entries| {
                for (k, v) in [("service", "kdeploy"), ("username", "age-identity")] {
                    entries.structure(|e| {
                        e.string(k).string(v);
                    });
                }
            })
            .variant("s", |v| {
                v.string("plain");
            })
            .boolean(true);
        let values = read(&body.bytes, "yoaya{ss}vb").unwrap();
        assert_eq!(values[0], Value::Byte(7));
        assert_eq!(values[1].as_str(), Some("/org/freedesktop/secrets/session/1"));
        assert_eq!(values[2], Value::Bytes(Zeroizing::new(b"\x00secret\xff".to_vec())));
        let Value::Array(entries) = &values[3] else {
            panic!("{:?}", values[3])
        };
        let Value::Struct(entry) = &entries[1] else {
            panic!("{:?}", entries[1])
        };
        assert_eq!(entry[1].as_str(), Some("age-identity"));
        assert_eq!(values[4], Value::Variant(Box::new(Value::Str("plain".into()))));
        assert_eq!(values[5], Value::Bool(true));
        // The byte (1), padding to the string (3), its length (4): the string starts at 8.
        assert_eq!(&body.bytes[4..8], &34u32.to_le_bytes());
    }

    #[test]
    fn big_endian_messages_read_too() {
        // (u 258, s "ab") in big-endian order.
        let bytes = [0, 0, 1, 2, 0, 0, 0, 2, b'a', b'b', 0];
        let values = Reader {
            bytes: &bytes,
            position: 0,
            big_endian: true,
        }
        .values("us")
        .unwrap();
        assert_eq!(values, vec![Value::UInt(258), Value::Str("ab".into())]);
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        // An array claiming more bytes than there are; a string without its NUL; a bad boolean;
        // nesting past the limit; an unknown type code; a signature that never closes.
        assert!(read(&[0xff, 0xff, 0, 0, 1], "ay").is_err());
        assert!(read(&[2, 0, 0, 0, b'a', b'b', b'c'], "s").is_err());
        assert!(read(&[2, 0, 0, 0], "b").is_err());
        assert!(read(&[], &"(".repeat(70)).is_err());
        assert!(read(&[0], "z").is_err());
        assert!(read(&[0; 8], "(yy").is_err());
        let mut nested = Vec::new();
        for _ in 0..100 {
            nested.extend_from_slice(&[1, b'v', 0]);
        }
        assert!(read(&nested, "v").is_err());
        for length in 0..24 {
            let _ = read(&[0xa5; 24][..length], "a{sv}");
            let _ = read(&[0x01; 24][..length], "(oayays)");
        }
    }

    #[test]
    fn addresses_are_unescaped_and_split() {
        let address = "unix:path=/run/user/1000/my%20bus,guid=1234";
        assert_eq!(address_value(address, "path").unwrap(), b"/run/user/1000/my bus");
        assert_eq!(address_value(address, "guid").unwrap(), b"1234");
        assert_eq!(
            address_value("unix:abstract=/tmp/dbus-x", "abstract").unwrap(),
            b"/tmp/dbus-x"
        );
        assert!(address_value("unix:path=/bad%zz", "path").is_none());
        let env = |name: &str| (name == "DBUS_SESSION_BUS_ADDRESS").then(|| "tcp:host=x;unix:path=/b".to_owned());
        assert_eq!(session_addresses(&env).unwrap(), vec!["tcp:host=x", "unix:path=/b"]);
        assert!(
            connect("tcp:host=example.org,port=1")
                .unwrap_err()
                .contains("only unix:")
        );
        let none = |_: &str| None;
        assert!(matches!(session_addresses(&none), Err(Error::NoBus(_))));
    }
}
