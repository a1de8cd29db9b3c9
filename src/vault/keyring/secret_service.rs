//! The freedesktop Secret Service (gnome-keyring, KeePassXC, KWallet's bridge), spoken directly over
//! the session bus: one entry, found by its `service` and `username` attributes, read from or
//! written to the default collection. These are the attributes the `keyring` crate and
//! `secret-tool` use, so an identity stored by either is found, and one stored here is theirs too.
//!
//! The secret crosses the bus in a `plain` session: the bus is a socket private to the user, the
//! same trust a `dh-ietf1024-sha256-aes128-cbc-pkcs7` session ends up relying on. Items or
//! collections that are locked are unlocked through the service's prompt, waited for at most
//! [`PROMPT_TIMEOUT`].

use std::time::Duration;

use zeroize::Zeroizing;

use super::KeyringError;
use super::dbus::{Body, Connection, Error, Value};

const SERVICE: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_INTERFACE: &str = "org.freedesktop.Secret.Service";
const ITEM_INTERFACE: &str = "org.freedesktop.Secret.Item";
const PROMPT_INTERFACE: &str = "org.freedesktop.Secret.Prompt";
/// How long a person has to answer an unlock prompt.
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// `/` is the Secret Service's "nothing": no prompt needed, no such collection.
const NOTHING: &str = "/";

/// A connection with an open session, ready to move secrets.
struct Service {
    bus: Connection,
    session: String,
}

impl Service {
    fn open(env: &dyn Fn(&str) -> Option<String>) -> Result<Service, KeyringError> {
        let mut bus = Connection::session(env).map_err(unavailable)?;
        let mut body = Body::default();
        body.string("plain").variant("s", |v| {
            v.string("");
        });
        let reply = bus
            .call(SERVICE, SERVICE_PATH, SERVICE_INTERFACE, "OpenSession", "sv", body)
            .map_err(classify)?;
        let values = reply.values().map_err(classify)?;
        let session = values
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected("OpenSession"))?;
        Ok(Service {
            session: session.to_owned(),
            bus,
        })
    }

    fn call(
        &mut self,
        path: &str,
        interface: &str,
        member: &str,
        signature: &str,
        body: Body,
    ) -> Result<Vec<Value>, KeyringError> {
        let reply = self
            .bus
            .call(SERVICE, path, interface, member, signature, body)
            .map_err(classify)?;
        reply.values().map_err(classify)
    }

    /// The items whose attributes include `attributes`, unlocked (asking, if need be).
    fn search(&mut self, attributes: &[(&str, &str)]) -> Result<Vec<String>, KeyringError> {
        let mut body = Body::default();
        string_dict(&mut body, attributes);
        let values = self.call(SERVICE_PATH, SERVICE_INTERFACE, "SearchItems", "a{ss}", body)?;
        let list = |at: usize| {
            values
                .get(at)
                .and_then(Value::as_strings)
                .ok_or_else(|| unexpected("SearchItems"))
        };
        let (mut unlocked, locked) = (list(0)?, list(1)?);
        if !locked.is_empty() {
            unlocked.extend(self.unlock(&locked)?);
        }
        Ok(unlocked)
    }

    /// Unlocks `objects`, through the service's prompt when it needs one; returns those unlocked.
    fn unlock(&mut self, objects: &[String]) -> Result<Vec<String>, KeyringError> {
        let mut body = Body::default();
        body.array(4, |paths| {
            for path in objects {
                paths.string(path);
            }
        });
        let values = self.call(SERVICE_PATH, SERVICE_INTERFACE, "Unlock", "ao", body)?;
        let unlocked = values
            .first()
            .and_then(Value::as_strings)
            .ok_or_else(|| unexpected("Unlock"))?;
        let prompt = values
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected("Unlock"))?;
        if prompt == NOTHING {
            return Ok(unlocked);
        }
        let result = self.prompt(prompt)?;
        Ok(unlocked
            .into_iter()
            .chain(result.as_strings().unwrap_or_default())
            .collect())
    }

    /// Shows `prompt` and waits for it to be answered; returns its result.
    fn prompt(&mut self, prompt: &str) -> Result<Value, KeyringError> {
        let mut rule = Body::default();
        rule.string(&format!(
            "type='signal',interface='{PROMPT_INTERFACE}',member='Completed',path='{prompt}'"
        ));
        self.bus
            .call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                "s",
                rule,
            )
            .map_err(classify)?;
        let mut window = Body::default();
        window.string("");
        self.call(prompt, PROMPT_INTERFACE, "Prompt", "s", window)?;
        let completed = self
            .bus
            .signal(prompt, PROMPT_INTERFACE, "Completed", PROMPT_TIMEOUT)
            .map_err(|e| match e {
                Error::Timeout(_) => KeyringError::Locked(format!(
                    "the keyring's unlock prompt had no answer within {} s",
                    PROMPT_TIMEOUT.as_secs()
                )),
                other => classify(other),
            })?;
        let values = completed.values().map_err(classify)?;
        if values.first().and_then(Value::as_bool) != Some(false) {
            return Err(KeyringError::Locked(
                "the keyring's unlock prompt was dismissed".to_owned(),
            ));
        }
        match values.into_iter().nth(1) {
            Some(Value::Variant(result)) => Ok(*result),
            _ => Err(unexpected("Prompt.Completed")),
        }
    }

    /// The secret of `item`.
    fn secret(&mut self, item: &str) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let mut body = Body::default();
        body.string(&self.session);
        let values = self.call(item, ITEM_INTERFACE, "GetSecret", "o", body)?;
        // (session, parameters, value, content type)
        match values.into_iter().next() {
            Some(Value::Struct(fields)) => match fields.into_iter().nth(2) {
                Some(Value::Bytes(secret)) => Ok(secret),
                _ => Err(unexpected("GetSecret")),
            },
            _ => Err(unexpected("GetSecret")),
        }
    }

    /// The default collection, unlocked.
    fn default_collection(&mut self) -> Result<String, KeyringError> {
        let mut body = Body::default();
        body.string("default");
        let values = self.call(SERVICE_PATH, SERVICE_INTERFACE, "ReadAlias", "s", body)?;
        let collection = values
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected("ReadAlias"))?
            .to_owned();
        if collection == NOTHING {
            return Err(KeyringError::Unavailable(
                "the Secret Service has no default keyring; create one (Seahorse, or your desktop's password manager) and try again".to_owned(),
            ));
        }
        self.unlock(std::slice::from_ref(&collection))?;
        Ok(collection)
    }

    /// Creates (or replaces) the item with `attributes` in `collection`.
    fn create(
        &mut self,
        collection: &str,
        label: &str,
        attributes: &[(&str, &str)],
        secret: &[u8],
    ) -> Result<(), KeyringError> {
        let mut body = Body::default();
        body.array(8, |properties| {
            properties.structure(|p| {
                p.string("org.freedesktop.Secret.Item.Label").variant("s", |v| {
                    v.string(label);
                });
            });
            properties.structure(|p| {
                p.string("org.freedesktop.Secret.Item.Attributes")
                    .variant("a{ss}", |v| string_dict(v, attributes));
            });
        });
        body.structure(|s| {
            s.string(&self.session).bytes(&[]).bytes(secret).string("text/plain");
        });
        body.boolean(true);
        let values = self.call(
            collection,
            "org.freedesktop.Secret.Collection",
            "CreateItem",
            "a{sv}(oayays)b",
            body,
        )?;
        let prompt = values
            .get(1)
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected("CreateItem"))?
            .to_owned();
        if prompt != NOTHING {
            self.prompt(&prompt)?;
        }
        Ok(())
    }
}

fn string_dict(body: &mut Body, entries: &[(&str, &str)]) {
    body.array(8, |dict| {
        for (key, value) in entries {
            dict.structure(|entry| {
                entry.string(key).string(value);
            });
        }
    });
}

fn attributes<'a>(service: &'a str, account: &'a str) -> [(&'static str, &'a str); 2] {
    [("service", service), ("username", account)]
}

/// The secret stored for `service`/`account`, if there is one.
pub fn read(
    service: &str,
    account: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Zeroizing<String>>, KeyringError> {
    let mut keyring = Service::open(env)?;
    let items = keyring.search(&attributes(service, account))?;
    let item = match items.as_slice() {
        [] => return Ok(None),
        [one] => one,
        many => {
            return Err(KeyringError::Other(format!(
                "{} entries match service={service} username={account}; keep one (secret-tool search --all service {service} username {account})",
                many.len()
            )));
        }
    };
    let secret = keyring.secret(item)?;
    let text =
        std::str::from_utf8(&secret).map_err(|_| KeyringError::Other("the stored entry is not text".to_owned()))?;
    Ok(Some(Zeroizing::new(text.to_owned())))
}

/// Stores `secret` for `service`/`account` in the default collection, replacing what was there.
pub fn write(
    service: &str,
    account: &str,
    label: &str,
    secret: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), KeyringError> {
    let mut keyring = Service::open(env)?;
    let collection = keyring.default_collection()?;
    keyring.create(&collection, label, &attributes(service, account), secret.as_bytes())
}

/// No bus, or no Secret Service on it.
fn unavailable(error: Error) -> KeyringError {
    KeyringError::Unavailable(error.to_string())
}

fn classify(error: Error) -> KeyringError {
    match error {
        Error::NoBus(_) => unavailable(error),
        Error::Remote { ref name, .. }
            if name == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name == "org.freedesktop.DBus.Error.NameHasNoOwner" =>
        {
            KeyringError::Unavailable(format!("nothing on the session bus provides {SERVICE}"))
        }
        Error::Remote { ref name, .. }
            if name == "org.freedesktop.Secret.Error.IsLocked" || name == "org.freedesktop.DBus.Error.AccessDenied" =>
        {
            KeyringError::Locked(error.to_string())
        }
        other => KeyringError::Other(other.to_string()),
    }
}

fn unexpected(call: &str) -> KeyringError {
    KeyringError::Other(format!(
        "the Secret Service answered {call} with something else than its specification says"
    ))
}
