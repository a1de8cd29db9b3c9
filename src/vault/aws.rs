//! AWS as sops and the AWS CLI know it: credentials from the standard chain, requests signed with
//! Signature Version 4, and the four calls kdeploy needs (KMS Encrypt/Decrypt for SOPS data keys,
//! Secrets Manager GetSecretValue and SSM GetParameter for `ref+awssecrets://` and `ref+awsssm://`).
//!
//! The credential chain, in order: a profile named by the key or reference; `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`); web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` and
//! `AWS_ROLE_ARN`, as GitHub Actions OIDC and EKS IRSA set them); the shared files' profile
//! (`AWS_PROFILE` or `default`, in `~/.aws/credentials` and `~/.aws/config`, with `role_arn` and
//! `source_profile`); container credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI` or `_RELATIVE_URI`,
//! as ECS and EKS Pod Identity set them). A KMS key's `role` is assumed through STS on top.
//! Endpoints: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`,
//! then AWS's own.
//!
//! Four small JSON calls do not justify the AWS SDK's build (see the README's building blocks);
//! signing is a few HMACs over `sha2`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::http::{Client, RemoteError, percent_encode};
use crate::util::hex;

/// A snapshot of the environment variables the chain reads.
pub type EnvMap = BTreeMap<String, String>;

/// Signing credentials. The secret parts are zeroed when dropped and never printed.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
    /// Where they came from, for messages.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} from {})", self.access_key_id, self.source)
    }
}

/// The AWS services kdeploy calls, with what each needs to be addressed and signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Kms,
    SecretsManager,
    Ssm,
    Sts,
}

impl Service {
    /// The signing name and endpoint prefix.
    fn code(self) -> &'static str {
        match self {
            Service::Kms => "kms",
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "ssm",
            Service::Sts => "sts",
        }
    }

    /// The suffix of its service-specific endpoint variable (`AWS_ENDPOINT_URL_KMS`).
    fn env_suffix(self) -> &'static str {
        match self {
            Service::Kms => "KMS",
            Service::SecretsManager => "SECRETS_MANAGER",
            Service::Ssm => "SSM",
            Service::Sts => "STS",
        }
    }

    fn target_prefix(self) -> &'static str {
        match self {
            Service::Kms => "TrentService",
            Service::SecretsManager => "secretsmanager",
            Service::Ssm => "AmazonSSM",
            Service::Sts => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Kms => "AWS KMS",
            Service::SecretsManager => "AWS Secrets Manager",
            Service::Ssm => "AWS SSM Parameter Store",
            Service::Sts => "AWS STS",
        }
    }
}

/// One profile of the shared config and credentials files, merged.
#[derive(Debug, Default, Clone)]
struct Profile {
    settings: BTreeMap<String, String>,
}

impl Profile {
    fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// A profile and a role to assume: what one set of credentials is resolved for.
type CredentialsKey = (Option<String>, Option<String>);

/// The AWS side of one kdeploy run: the environment snapshot, one HTTP client, and credentials
/// resolved once per profile and role.
pub struct Aws {
    env: EnvMap,
    client: Result<Client, RemoteError>,
    credentials: Mutex<BTreeMap<CredentialsKey, Result<Credentials, RemoteError>>>,
    /// Profiles read from the shared files, by name: read once per run, not once per request.
    profiles: Mutex<BTreeMap<String, Result<Profile, RemoteError>>>,
}

impl Aws {
    pub fn new(env: EnvMap) -> Aws {
        let bundle = env.get("AWS_CA_BUNDLE").filter(|v| !v.is_empty()).map(PathBuf::from);
        Aws {
            client: Client::new(bundle.as_deref()),
            env,
            credentials: Mutex::new(BTreeMap::new()),
            profiles: Mutex::new(BTreeMap::new()),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn client(&self) -> Result<&Client, RemoteError> {
        self.client.as_ref().map_err(Clone::clone)
    }

    /// The region from the environment or the profile.
    pub fn default_region(&self, profile: Option<&str>) -> Option<String> {
        self.var("AWS_REGION")
            .or_else(|| self.var("AWS_DEFAULT_REGION"))
            .map(str::to_owned)
            .or_else(|| self.profile(profile).ok()?.get("region").map(str::to_owned))
    }

    fn profile_name<'a>(&'a self, explicit: Option<&'a str>) -> &'a str {
        explicit
            .filter(|p| !p.is_empty())
            .or_else(|| self.var("AWS_PROFILE"))
            .unwrap_or("default")
    }

    fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }

    /// The profile's settings from `~/.aws/config` (`[profile NAME]`, `[default]`) under those of
    /// `~/.aws/credentials` (`[NAME]`).
    fn profile(&self, explicit: Option<&str>) -> Result<Profile, RemoteError> {
        let name = self.profile_name(explicit).to_owned();
        let mut profiles = self.profiles.lock().expect("profiles lock");
        profiles
            .entry(name.clone())
            .or_insert_with(|| self.read_profile(&name))
            .clone()
    }

    fn read_profile(&self, name: &str) -> Result<Profile, RemoteError> {
        let config_file = self
            .var("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .or_else(|| self.home().map(|h| h.join(".aws/config")));
        let credentials_file = self
            .var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| self.home().map(|h| h.join(".aws/credentials")));
        let mut profile = Profile::default();
        let config_section = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        for (file, section) in [(config_file, config_section), (credentials_file, name.to_owned())] {
            let Some(file) = file else { continue };
            if let Some(settings) = read_ini_section(&file, &section)? {
                profile.settings.extend(settings);
            }
        }
        Ok(profile)
    }

    /// The endpoint for `service` in `region`.
    fn endpoint(&self, service: Service, region: &str, profile: Option<&str>) -> String {
        self.var(&format!("AWS_ENDPOINT_URL_{}", service.env_suffix()))
            .or_else(|| self.var("AWS_ENDPOINT_URL"))
            .map(str::to_owned)
            .or_else(|| self.profile(profile).ok()?.get("endpoint_url").map(str::to_owned))
            .map(|e| e.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{}.{region}.amazonaws.com", service.code()))
    }

    /// Credentials for `profile` (or the chain's default), with `role` assumed on top when given.
    pub fn credentials(&self, profile: Option<&str>, role: Option<&str>) -> Result<Credentials, RemoteError> {
        let key = (profile.map(str::to_owned), role.map(str::to_owned));
        if let Some(cached) = self.credentials.lock().expect("credentials lock").get(&key) {
            return cached.clone();
        }
        let resolved = self.resolve_credentials(profile).and_then(|base| match role {
            None => Ok(base),
            Some(role) => self.assume_role(&base, role, profile),
        });
        self.credentials
            .lock()
            .expect("credentials lock")
            .insert(key, resolved.clone());
        resolved
    }

    fn resolve_credentials(&self, explicit_profile: Option<&str>) -> Result<Credentials, RemoteError> {
        let mut tried = Vec::new();
        if explicit_profile.is_none() {
            match (self.var("AWS_ACCESS_KEY_ID"), self.var("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => {
                    return Ok(Credentials {
                        access_key_id: id.to_owned(),
                        secret_access_key: Zeroizing::new(secret.to_owned()),
                        session_token: self.var("AWS_SESSION_TOKEN").map(|t| Zeroizing::new(t.to_owned())),
                        source: "AWS_ACCESS_KEY_ID".into(),
                    });
                }
                _ => tried.push("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: not set".to_owned()),
            }
            match (self.var("AWS_WEB_IDENTITY_TOKEN_FILE"), self.var("AWS_ROLE_ARN")) {
                (Some(file), Some(role)) => return self.web_identity(Path::new(file), role, None),
                _ => tried.push("AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN: not set".to_owned()),
            }
        }
        let name = self.profile_name(explicit_profile).to_owned();
        let profile = self.profile(explicit_profile)?;
        if let Some(credentials) = self.profile_credentials(&name, &profile, 0)? {
            return Ok(credentials);
        }
        tried.push(format!(
            "profile {name} in the shared config and credentials files: no credentials"
        ));
        if explicit_profile.is_none() {
            let uri = self
                .var("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                .map(str::to_owned)
                .or_else(|| {
                    self.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                        .map(|r| format!("http://169.254.170.2{r}"))
                });
            match uri {
                Some(uri) => return self.container_credentials(&uri),
                None => tried.push("AWS_CONTAINER_CREDENTIALS_FULL_URI: not set".to_owned()),
            }
        }
        Err(RemoteError::NoCredentials(format!(
            "AWS credentials not found (tried {}; instance metadata is not read)",
            tried.join("; ")
        )))
    }

    fn profile_credentials(
        &self,
        name: &str,
        profile: &Profile,
        depth: usize,
    ) -> Result<Option<Credentials>, RemoteError> {
        if depth > 4 {
            return Err(RemoteError::NoCredentials(format!(
                "profile {name}: source_profile chain is too deep (a loop?)"
            )));
        }
        if let Some(role) = profile.get("role_arn") {
            if let Some(token_file) = profile.get("web_identity_token_file") {
                return self.web_identity(Path::new(token_file), role, Some(name)).map(Some);
            }
            let source = profile.get("source_profile").ok_or_else(|| {
                RemoteError::NoCredentials(format!(
                    "profile {name} has role_arn but no source_profile (credential_source is not supported)"
                ))
            })?;
            let base_profile = if source == name {
                // A profile may hold its own keys and the role to assume with them.
                let mut own = profile.clone();
                own.settings.remove("role_arn");
                own
            } else {
                self.profile(Some(source))?
            };
            let base = self
                .profile_credentials(source, &base_profile, depth + 1)?
                .ok_or_else(|| {
                    RemoteError::NoCredentials(format!("source_profile {source} of profile {name} has no credentials"))
                })?;
            return self.assume_role(&base, role, Some(name)).map(Some);
        }
        match (profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => Ok(Some(Credentials {
                access_key_id: id.to_owned(),
                secret_access_key: Zeroizing::new(secret.to_owned()),
                session_token: profile.get("aws_session_token").map(|t| Zeroizing::new(t.to_owned())),
                source: format!("profile {name}"),
            })),
            _ => Ok(None),
        }
    }

    fn sts_region(&self, profile: Option<&str>) -> String {
        self.default_region(profile).unwrap_or_else(|| "us-east-1".to_owned())
    }

    /// STS AssumeRole with `base`.
    fn assume_role(&self, base: &Credentials, role: &str, profile: Option<&str>) -> Result<Credentials, RemoteError> {
        let region = self.sts_region(profile);
        let body = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=kdeploy",
            percent_encode(role)
        );
        let reply = self.send(Service::Sts, &region, profile, base, None, body.into_bytes())?;
        sts_credentials(&reply, &format!("role {role}"))
    }

    /// STS AssumeRoleWithWebIdentity (unsigned: the token is the proof).
    fn web_identity(&self, token_file: &Path, role: &str, profile: Option<&str>) -> Result<Credentials, RemoteError> {
        let token = Zeroizing::new(std::fs::read_to_string(token_file).map_err(|e| {
            RemoteError::NoCredentials(format!(
                "cannot read the web identity token {}: {e}",
                token_file.display()
            ))
        })?);
        let session = self.var("AWS_ROLE_SESSION_NAME").unwrap_or("kdeploy");
        let body = Zeroizing::new(format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
            percent_encode(role),
            percent_encode(session),
            percent_encode(token.trim())
        ));
        let region = self.sts_region(profile);
        let url = format!("{}/", self.endpoint(Service::Sts, &region, profile));
        let reply = self.client()?.send(
            "POST",
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )?;
        if reply.status >= 300 {
            return Err(classify(Service::Sts, &reply));
        }
        sts_credentials(&reply.text, &format!("web identity role {role}"))
    }

    fn container_credentials(&self, uri: &str) -> Result<Credentials, RemoteError> {
        let token = match self.var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(file) => Some(std::fs::read_to_string(file).map_err(|e| {
                RemoteError::NoCredentials(format!(
                    "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {file}: {e}"
                ))
            })?),
            None => self.var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(str::to_owned),
        };
        let token = token.map(|t| Zeroizing::new(t.trim().to_owned()));
        let headers: Vec<(&str, &str)> = token.iter().map(|t| ("authorization", t.as_str())).collect();
        let reply = self.client()?.send("GET", uri, &headers, None)?;
        let field = |name: &str| reply.json[name].as_str().map(str::to_owned);
        match (field("AccessKeyId"), field("SecretAccessKey")) {
            (Some(id), Some(secret)) if reply.status < 300 => Ok(Credentials {
                access_key_id: id,
                secret_access_key: Zeroizing::new(secret),
                session_token: field("Token").map(Zeroizing::new),
                source: "container credentials".into(),
            }),
            _ => Err(RemoteError::NoCredentials(format!(
                "container credentials at {uri} answered {} without keys",
                reply.status
            ))),
        }
    }

    /// Signs and sends one request; `target` is the JSON protocol's operation (None for STS's query
    /// protocol). Returns the body of a successful reply.
    fn send(
        &self,
        service: Service,
        region: &str,
        profile: Option<&str>,
        credentials: &Credentials,
        target: Option<&str>,
        body: Vec<u8>,
    ) -> Result<String, RemoteError> {
        // A region from a file or a reference becomes part of the host name: checked first.
        crate::trust::check_aws_region(region).map_err(RemoteError::Failed)?;
        let url = format!("{}/", self.endpoint(service, region, profile));
        let host = url
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_owned())
            .unwrap_or_default();
        let [year, month, day, hour, minute, second] = crate::util::utc_now();
        let amz_date = format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z");
        let content_type = if target.is_some() {
            "application/x-amz-json-1.1"
        } else {
            "application/x-www-form-urlencoded"
        };
        let full_target = target.map(|t| format!("{}.{t}", service.target_prefix()));
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), content_type.into()),
            ("host".into(), host),
            ("x-amz-date".into(), amz_date.clone()),
        ];
        if let Some(token) = &credentials.session_token {
            headers.push(("x-amz-security-token".into(), token.to_string()));
        }
        if let Some(target) = &full_target {
            headers.push(("x-amz-target".into(), target.clone()));
        }
        let authorization = sign_v4(&SigningInput {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            payload: &body,
            region,
            service: service.code(),
            amz_date: &amz_date,
            access_key_id: &credentials.access_key_id,
            secret_access_key: &credentials.secret_access_key,
        });
        let mut sent: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(name, _)| name != "host")
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        sent.push(("authorization", &authorization));
        let reply = self.client()?.send("POST", &url, &sent, Some(&body))?;
        if reply.status >= 300 {
            return Err(classify(service, &reply));
        }
        Ok(reply.text)
    }

    /// Calls one JSON-protocol operation and returns its reply.
    pub fn call(
        &self,
        service: Service,
        operation: &str,
        region: &str,
        profile: Option<&str>,
        role: Option<&str>,
        request: &Json,
    ) -> Result<Json, RemoteError> {
        // In untrusted mode the profile and role a file or reference names are not used: which
        // credentials, endpoints and roles apply is the operator's choice (AWS_PROFILE, AWS_ROLE_ARN).
        let (profile, role) = if crate::trust::untrusted() {
            (None, None)
        } else {
            (profile, role)
        };
        let credentials = self.credentials(profile, role)?;
        let body = Zeroizing::new(serde_json::to_vec(request).expect("JSON serialises"));
        let text = Zeroizing::new(self.send(service, region, profile, &credentials, Some(operation), body.to_vec())?);
        serde_json::from_str(&text).map_err(|e| {
            RemoteError::Failed(format!(
                "{}: {operation} answered with invalid JSON: {e}",
                service.name()
            ))
        })
    }
}

/// A KMS key as sops names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KmsKey {
    pub arn: String,
    pub role: Option<String>,
    pub context: BTreeMap<String, String>,
    pub profile: Option<String>,
}

impl KmsKey {
    /// The region in the ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`).
    pub fn region(&self) -> Result<&str, RemoteError> {
        self.arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| RemoteError::Failed(format!("{} is not a KMS key ARN (arn:aws:kms:REGION:…)", self.arn)))
    }

    fn context_json(&self) -> Json {
        Json::Object(
            self.context
                .iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect(),
        )
    }

    /// Calls one KMS operation on this key: its id, encryption context, region, profile and role
    /// added to `request`.
    fn call(&self, aws: &Aws, operation: &str, mut request: Json) -> Result<Json, RemoteError> {
        request["KeyId"] = json!(self.arn);
        if !self.context.is_empty() {
            request["EncryptionContext"] = self.context_json();
        }
        aws.call(
            Service::Kms,
            operation,
            self.region()?,
            self.profile.as_deref(),
            self.role.as_deref(),
            &request,
        )
    }

    /// Encrypts the data key; returns the ciphertext blob, base64, as sops stores it.
    pub fn encrypt(&self, aws: &Aws, plaintext: &[u8]) -> Result<String, RemoteError> {
        use base64::Engine as _;
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plaintext));
        let reply = self.call(aws, "Encrypt", json!({"Plaintext": encoded.as_str()}))?;
        reply["CiphertextBlob"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RemoteError::Failed("AWS KMS Encrypt answered without a CiphertextBlob".into()))
    }

    /// Decrypts a ciphertext blob (base64) back to the data key.
    pub fn decrypt(&self, aws: &Aws, blob: &str) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
        use base64::Engine as _;
        let reply = self.call(aws, "Decrypt", json!({"CiphertextBlob": blob}))?;
        let encoded = reply["Plaintext"]
            .as_str()
            .ok_or_else(|| RemoteError::Failed("AWS KMS Decrypt answered without a Plaintext".into()))?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(Zeroizing::new)
            .map_err(|_| RemoteError::Failed("AWS KMS Decrypt answered with a Plaintext that is not base64".into()))
    }
}

/// Sorts an AWS error reply into what the user acts on. The message is the service's own.
fn classify(service: Service, reply: &super::http::Reply) -> RemoteError {
    let code = reply.json["__type"]
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        .or_else(|| xml_field(&reply.text, "Code"))
        .unwrap_or_else(|| format!("HTTP {}", reply.status));
    let message = reply.json["message"]
        .as_str()
        .or_else(|| reply.json["Message"].as_str())
        .map(str::to_owned)
        .or_else(|| xml_field(&reply.text, "Message"))
        .unwrap_or_default();
    let detail = format!(
        "{}: {code}{}",
        service.name(),
        if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        }
    );
    match code.as_str() {
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch" => RemoteError::Denied(detail),
        "NotFoundException" | "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => {
            RemoteError::NotFound(detail)
        }
        "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
            RemoteError::KeyUnusable(detail)
        }
        _ if reply.status == 403 => RemoteError::Denied(detail),
        _ => RemoteError::Failed(detail),
    }
}

fn sts_credentials(xml: &str, what: &str) -> Result<Credentials, RemoteError> {
    match (xml_field(xml, "AccessKeyId"), xml_field(xml, "SecretAccessKey")) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: id,
            secret_access_key: Zeroizing::new(secret),
            session_token: xml_field(xml, "SessionToken").map(Zeroizing::new),
            source: what.to_owned(),
        }),
        _ => Err(RemoteError::NoCredentials(format!(
            "AWS STS answered for {what} without credentials"
        ))),
    }
}

/// The text of the first `<name>…</name>` element (STS answers in XML).
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// One section of an INI file as the AWS tools read it: `key = value` lines, `#`/`;` comments.
/// `Ok(None)` when the file or the section does not exist.
fn read_ini_section(path: &Path, section: &str) -> Result<Option<BTreeMap<String, String>>, RemoteError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RemoteError::NoCredentials(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let mut found = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            if inside {
                found.get_or_insert_with(BTreeMap::new);
            }
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            found
                .get_or_insert_with(BTreeMap::new)
                .insert(key.trim().to_lowercase(), value.trim().to_owned());
        }
    }
    Ok(found)
}

/// What a Signature Version 4 signature covers.
pub struct SigningInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Lower-case names; all of them are signed.
    pub headers: &'a [(String, String)],
    pub payload: &'a [u8],
    pub region: &'a str,
    pub service: &'a str,
    pub amz_date: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// The `Authorization` header value for a request (AWS Signature Version 4).
pub fn sign_v4(input: &SigningInput<'_>) -> String {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(n, v)| (n.to_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        input.method,
        input.path,
        input.query,
        hex(&Sha256::digest(input.payload))
    );
    let date = &input.amz_date[..8];
    let scope = format!("{date}/{}/{}/aws4_request", input.region, input.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        input.amz_date,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let secret = Zeroizing::new(format!("AWS4{}", input.secret_access_key));
    let mut key = hmac(secret.as_bytes(), date.as_bytes());
    for part in [input.region, input.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        input.access_key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's Signature Version 4 documentation (IAM ListUsers, 2015-08-30).
    #[test]
    fn signature_matches_the_aws_documentation_example() {
        let headers = vec![
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
            ("host".to_owned(), "iam.amazonaws.com".to_owned()),
            ("x-amz-date".to_owned(), "20150830T123600Z".to_owned()),
        ];
        let authorization = sign_v4(&SigningInput {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            payload: b"",
            region: "us-east-1",
            service: "iam",
            amz_date: "20150830T123600Z",
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        });
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn profiles_merge_config_and_credentials_and_chain_source_profiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config"),
            "[default]\nregion = eu-west-1\n\n[profile ci]\nregion = us-east-2\nendpoint_url = http://127.0.0.1:1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n[ci]\n# comment\naws_access_key_id=AKIDCI\naws_secret_access_key=s2\n",
        )
        .unwrap();
        let env: EnvMap = [
            ("AWS_CONFIG_FILE", dir.path().join("config")),
            ("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("credentials")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.display().to_string()))
        .collect();
        let aws = Aws::new(env);
        assert_eq!(aws.default_region(None).as_deref(), Some("eu-west-1"));
        assert_eq!(aws.default_region(Some("ci")).as_deref(), Some("us-east-2"));
        assert_eq!(aws.credentials(None, None).unwrap().access_key_id, "AKIDDEFAULT");
        assert_eq!(aws.credentials(Some("ci"), None).unwrap().access_key_id, "AKIDCI");
        assert_eq!(
            aws.endpoint(Service::Kms, "us-east-2", Some("ci")),
            "http://127.0.0.1:1"
        );
        assert_eq!(
            aws.endpoint(Service::Kms, "eu-west-1", None),
            "https://kms.eu-west-1.amazonaws.com"
        );
        let missing = aws.credentials(Some("nobody"), None).unwrap_err().to_string();
        assert!(missing.contains("profile nobody"), "{missing}");
    }
}
