//! Why a connection could not be made, with the cause kept as the error's source.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Why [`connect`](crate::connect) failed. Every variant names the problem and where (the URL
/// part, or the server's `host:port`); none repeats a password. The underlying error (of the
/// client, of rustls, of the URL parser) is kept as [`source`](std::error::Error::source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not parse, or one of its parts is not what a Redis URL allows.
    #[error("invalid Redis URL {url}: {part}: {reason}")]
    InvalidUrl {
        /// The URL, with its password replaced by `***`.
        url: String,
        /// The part at fault.
        part: UrlPart,
        /// What is wrong with it.
        reason: String,
        /// The parser's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The URL asks for TLS (`rediss://`, `valkeys://`) but this build has no TLS support.
    #[error(
        "Redis URL {url} asks for TLS but TLS support is not compiled in: enable the `tls-rustls` \
         feature (of spane, spane-queue, spane-events, spane-triggers or spane-redis)"
    )]
    TlsNotEnabled {
        /// The URL, with its password replaced by `***`.
        url: String,
    },
    /// The endpoint's TLS settings cannot be used: a root certificate or client identity is not
    /// readable PEM, or no root certificate is left to trust.
    #[error("TLS settings of the Redis endpoint are unusable: {reason}")]
    InvalidTls {
        /// What is wrong, naming the setting (for example `root certificate 2`).
        reason: String,
        /// The parser's or rustls's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The server's certificate is not trusted: it is not issued by a trusted root for the
    /// host name of the URL (or has expired). Add the CA with
    /// [`RedisEndpoint::tls_root_pem`](crate::RedisEndpoint::tls_root_pem).
    #[error(
        "certificate of the Redis server at {address} is not trusted: {source} (add its CA with \
         RedisEndpoint::tls_root_pem, or check the host name in the URL)"
    )]
    CertificateNotTrusted {
        /// `host:port` of the server.
        address: String,
        /// rustls's verdict (for example an unknown issuer or a name mismatch).
        #[source]
        source: Cause,
    },
    /// The server accepts TCP connections but the TLS handshake failed for another reason than
    /// its certificate (for example it does not speak TLS on that port, or asks for a client
    /// certificate).
    #[error("TLS handshake with the Redis server at {address} failed: {source}")]
    TlsHandshake {
        /// `host:port` of the server.
        address: String,
        /// The client's error.
        #[source]
        source: Cause,
    },
    /// The server refused the credentials (`WRONGPASS`), or asks for some and none were given
    /// (`NOAUTH`).
    #[error("Redis server at {address} refused authentication as user {user:?}: {source}")]
    AuthRefused {
        /// `host:port` of the server.
        address: String,
        /// The user name of the URL (`default` when it names none). Never the password.
        user: String,
        /// The server's answer.
        #[source]
        source: Cause,
    },
    /// Nothing accepts TCP connections at the address (or the connection timed out).
    #[error("Redis server at {address} is unreachable: {source}")]
    Unreachable {
        /// `host:port` of the server.
        address: String,
        /// The client's error.
        #[source]
        source: Cause,
    },
    /// Something accepts TCP connections at the address but does not answer as plain Redis: for
    /// example a TLS port reached with a `redis://` URL (use `rediss://`).
    #[error(
        "server at {address} accepts connections but does not answer as plain Redis (a TLS port \
         needs a rediss:// URL): {source}"
    )]
    NotRedis {
        /// `host:port` of the server.
        address: String,
        /// The client's error.
        #[source]
        source: Cause,
    },
    /// The connection failed in another way (the server answered the handshake with an error).
    #[error("connecting to the Redis server at {address} failed: {source}")]
    Failed {
        /// `host:port` of the server.
        address: String,
        /// The client's error.
        #[source]
        source: Cause,
    },
}

/// The part of a Redis URL that [`ConnectError::InvalidUrl`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlPart {
    /// The URL as a whole does not parse.
    Syntax,
    /// The scheme (`redis`, `rediss`, `valkey`, `valkeys`, with `-cluster` or `-sentinel`).
    Scheme,
    /// The host.
    Host,
    /// The port.
    Port,
    /// The database number in the path (`/0` to `/255`).
    Database,
    /// The user name.
    UserName,
    /// The password.
    Password,
}

impl fmt::Display for UrlPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Syntax => "syntax",
            Self::Scheme => "scheme",
            Self::Host => "host",
            Self::Port => "port",
            Self::Database => "database",
            Self::UserName => "user name",
            Self::Password => "password",
        })
    }
}

/// The underlying error of a [`ConnectError`]: the Redis client's, rustls's or the URL
/// parser's, behind one opaque type so that those crates stay out of this crate's API. It
/// displays as the error it holds and forwards [`source`](std::error::Error::source). Two
/// causes are equal when they display the same.
#[derive(Clone)]
pub struct Cause(Arc<dyn StdError + Send + Sync + 'static>);

impl Cause {
    pub(crate) fn new(error: impl StdError + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}
