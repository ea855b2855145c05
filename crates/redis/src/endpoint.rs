//! Where Redis is and how to reach it: the URL, TLS roots and identity, the connect timeout.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::{Cause, ConnectError, UrlPart};

/// How long a connection (TCP, TLS and authentication) may take by default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis server to connect to, with a builder-style API: the URL and, for `rediss://`, the
/// TLS settings.
///
/// URL forms: `redis://[[user]:password@]host[:port][/db]` for plain TCP, `rediss://…` for TLS
/// (`valkey://` and `valkeys://` too). A password alone (`redis://:secret@host`) authenticates
/// as Redis's `default` user; a user and password (`rediss://app:secret@host`) as that ACL
/// user. Percent-encode reserved characters in either (`@` is `%40`).
///
/// ```
/// use std::time::Duration;
/// use spane_redis::RedisEndpoint;
///
/// # let ca_pem = b"-----BEGIN CERTIFICATE-----\n...".to_vec();
/// let endpoint = RedisEndpoint::new("rediss://app:secret@redis.internal:6380/0")
///     .tls_root_pem(ca_pem)
///     .connect_timeout(Duration::from_secs(10));
/// assert!(endpoint.uses_tls());
/// // The password never shows in `Debug` or in errors.
/// assert!(!format!("{endpoint:?}").contains("secret"));
///
/// let plain: RedisEndpoint = "redis://127.0.0.1:6379".into();
/// assert!(!plain.uses_tls());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisEndpoint {
    pub(crate) url: String,
    pub(crate) roots: Vec<Vec<u8>>,
    pub(crate) default_roots: bool,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
    pub(crate) connect_timeout: Duration,
}

impl RedisEndpoint {
    /// The server at `url`, with defaults: for TLS, Mozilla's root certificates (the
    /// `webpki-roots` set compiled into the program, so it works the same in a minimal
    /// container without a system CA bundle) and no client certificate; a connect timeout of
    /// 5 s. The URL is checked when connecting.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            roots: Vec::new(),
            default_roots: true,
            identity: None,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }

    /// Also trusts the certificates in `pem` (one or more `-----BEGIN CERTIFICATE-----`
    /// blocks): the CA of a private or self-signed deployment. May be called more than once.
    pub fn tls_root_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// Whether to trust Mozilla's root certificates as well as the
    /// [`tls_root_pem`](Self::tls_root_pem) ones (default `true`). Turn it off to accept only
    /// servers whose certificate your own CA issued.
    pub fn tls_default_roots(mut self, trust: bool) -> Self {
        self.default_roots = trust;
        self
    }

    /// A client certificate (chain, PEM) and its private key (PEM: PKCS#8, PKCS#1 or SEC1), for
    /// servers that authenticate clients by certificate (`tls-auth-clients yes`).
    pub fn tls_client_identity(
        mut self,
        cert_chain_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.identity = Some((cert_chain_pem.into(), key_pem.into()));
        self
    }

    /// How long one connection attempt (TCP, TLS handshake, authentication) may take
    /// (default 5 s, at least 1 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The URL as given (with its password: do not log it; see
    /// [`redacted_url`](Self::redacted_url)).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced by `***`, for logs and messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Whether the URL asks for TLS (`rediss://` or `valkeys://`, with or without `-cluster` or
    /// `-sentinel`).
    pub fn uses_tls(&self) -> bool {
        let scheme = self.url.split("://").next().unwrap_or_default();
        is_tls_scheme(&scheme.to_ascii_lowercase())
    }

    /// Checks the URL and returns what connecting needs to know about it.
    pub(crate) fn target(&self) -> Result<Target, ConnectError> {
        let invalid = |part, reason: String, source: Option<Cause>| ConnectError::InvalidUrl {
            url: self.redacted_url(),
            part,
            reason,
            source,
        };
        let url = Url::parse(&self.url).map_err(|e| {
            let part = match e {
                url::ParseError::EmptyHost
                | url::ParseError::IdnaError
                | url::ParseError::InvalidIpv4Address
                | url::ParseError::InvalidIpv6Address
                | url::ParseError::InvalidDomainCharacter => UrlPart::Host,
                url::ParseError::InvalidPort => UrlPart::Port,
                url::ParseError::RelativeUrlWithoutBase => UrlPart::Scheme,
                _ => UrlPart::Syntax,
            };
            invalid(part, e.to_string(), Some(Cause::new(e)))
        })?;
        let scheme = url.scheme();
        let family = scheme.strip_suffix("-cluster").unwrap_or(scheme);
        let family = family.strip_suffix("-sentinel").unwrap_or(family);
        if !matches!(family, "redis" | "rediss" | "valkey" | "valkeys") {
            return Err(invalid(
                UrlPart::Scheme,
                format!(
                    "{scheme:?} is not a Redis scheme (redis://, rediss:// for TLS, valkey://, valkeys://)"
                ),
                None,
            ));
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => return Err(invalid(UrlPart::Host, "no host".to_owned(), None)),
        };
        let port = url.port().unwrap_or(6379);
        if url.port() == Some(0) {
            return Err(invalid(UrlPart::Port, "port 0".to_owned(), None));
        }
        let path = url.path().trim_start_matches('/');
        if !path.is_empty() && !scheme.ends_with("-cluster") && path.parse::<u8>().is_err() {
            return Err(invalid(
                UrlPart::Database,
                format!("{path:?} is not a database number from 0 to 255"),
                None,
            ));
        }
        Ok(Target {
            address: format!("{host}:{port}"),
            host,
            port,
            tls: is_tls_scheme(scheme),
        })
    }
}

/// What connecting needs to know about a checked URL.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `host:port`, for messages.
    pub(crate) address: String,
    pub(crate) tls: bool,
}

fn is_tls_scheme(scheme: &str) -> bool {
    scheme.starts_with("rediss") || scheme.starts_with("valkeys")
}

/// `url` with its password replaced by `***`. A URL that does not parse loses everything
/// between `://` and the last `@` instead, since where its password ends is unknown.
fn redact(url: &str) -> String {
    if let Ok(mut parsed) = Url::parse(url) {
        if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
            return parsed.to_string();
        }
        return url.to_owned();
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}://***{}", &url[..start], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for RedisEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEndpoint")
            .field("url", &self.redacted_url())
            .field("tls_roots", &self.roots.len())
            .field("tls_default_roots", &self.default_roots)
            .field("tls_client_identity", &self.identity.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl From<&str> for RedisEndpoint {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl From<String> for RedisEndpoint {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl From<&String> for RedisEndpoint {
    fn from(url: &String) -> Self {
        Self::new(url.as_str())
    }
}

impl From<&RedisEndpoint> for RedisEndpoint {
    fn from(endpoint: &RedisEndpoint) -> Self {
        endpoint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(url: &str) -> UrlPart {
        match RedisEndpoint::new(url).target() {
            Err(ConnectError::InvalidUrl { part, .. }) => part,
            other => panic!("{url}: expected an invalid URL, got {other:?}"),
        }
    }

    #[test]
    fn invalid_urls_name_the_part_at_fault() {
        assert_eq!(part("127.0.0.1:6379"), UrlPart::Scheme);
        assert_eq!(part("http://127.0.0.1:6379"), UrlPart::Scheme);
        assert_eq!(part("redis://"), UrlPart::Host);
        assert_eq!(part("redis://127.0.0.1:99999"), UrlPart::Port);
        assert_eq!(part("redis://127.0.0.1:0"), UrlPart::Port);
        assert_eq!(part("redis://127.0.0.1:6379/db1"), UrlPart::Database);
        assert_eq!(part("redis://127.0.0.1:6379/256"), UrlPart::Database);
    }

    #[test]
    fn valid_urls_give_the_address_and_whether_tls_is_asked_for() {
        let plain = RedisEndpoint::new("redis://:pw@127.0.0.1/3")
            .target()
            .unwrap();
        assert_eq!(
            (plain.address.as_str(), plain.tls),
            ("127.0.0.1:6379", false)
        );
        let tls = RedisEndpoint::new("rediss://u:pw@redis.example:6380")
            .target()
            .unwrap();
        assert_eq!(
            (tls.address.as_str(), tls.tls),
            ("redis.example:6380", true)
        );
        assert!(RedisEndpoint::new("valkeys://h").uses_tls());
        assert!(!RedisEndpoint::new("redis://h").uses_tls());
    }

    #[test]
    fn passwords_never_show_in_messages() {
        let url = "rediss://app:s3cret@redis.example:6380/0";
        let endpoint = RedisEndpoint::new(url);
        assert_eq!(
            endpoint.redacted_url(),
            "rediss://app:***@redis.example:6380/0"
        );
        assert!(!format!("{endpoint:?}").contains("s3cret"));
        // A URL that does not parse loses its whole user part.
        let broken = RedisEndpoint::new("redis://app:s3cret@bad host:1");
        let error = broken.target().unwrap_err().to_string();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.contains("host"), "{error}");
    }
}
