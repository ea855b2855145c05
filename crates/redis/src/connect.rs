//! One connection to Redis: check the URL, set up TLS, connect, and say clearly why not.

use fred::error::{Error as ClientError, ErrorKind};
use fred::prelude::{Builder, Client, ClientLike, Config, ReconnectPolicy};

use crate::endpoint::{RedisEndpoint, Target};
use crate::error::{Cause, ConnectError, UrlPart};

/// How many times a command is sent before it fails (a reconnect in between counts one).
const COMMAND_ATTEMPTS: u32 = 3;

/// Why the TLS handshake failed, when the certificate verifier refused the server.
#[cfg(feature = "tls-rustls")]
type Refusal = Option<crate::tls::Refusal>;
#[cfg(not(feature = "tls-rustls"))]
type Refusal = Option<std::convert::Infallible>;

/// Connects to `endpoint` and returns a client that is ready for commands.
///
/// The client reconnects by itself after a lost connection (at once, then with an exponential
/// backoff from 50 ms up to 1 s, without a limit on attempts) and sends a command up to 3
/// times. The first connection is not retried: when it fails, the error says why
/// ([`ConnectError`]).
pub async fn connect(endpoint: &RedisEndpoint) -> Result<Client, ConnectError> {
    let target = endpoint.target()?;
    let mut config = Config::from_url(&endpoint.url).map_err(|e| ConnectError::InvalidUrl {
        url: endpoint.redacted_url(),
        part: url_part(&e),
        reason: e.details().to_string(),
        source: Some(Cause::new(e)),
    })?;
    let refusal = tls(endpoint, &target, &mut config)?;
    let user = config
        .username
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = endpoint.connect_timeout;
            c.max_command_attempts = COMMAND_ATTEMPTS;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
        .build()
        .map_err(|e| ConnectError::Failed {
            address: target.address.clone(),
            source: Cause::new(e),
        })?;
    match client.init().await {
        Ok(_) => Ok(client),
        Err(e) => {
            let _ = client.quit().await;
            Err(classify(e, endpoint, &target, user, refusal).await)
        }
    }
}

/// Sets up TLS when the URL asks for it.
#[cfg(feature = "tls-rustls")]
fn tls(
    endpoint: &RedisEndpoint,
    target: &Target,
    config: &mut Config,
) -> Result<Refusal, ConnectError> {
    if !target.tls {
        if !endpoint.roots.is_empty() || endpoint.identity.is_some() {
            tracing::warn!(
                url = %endpoint.redacted_url(),
                "TLS settings given for a plain redis:// URL are not used (use rediss:// for TLS)"
            );
        }
        config.tls = None;
        return Ok(None);
    }
    let (tls, refusal) = crate::tls::config(endpoint)?;
    config.tls = Some(tls);
    Ok(Some(refusal))
}

/// Refuses a TLS URL: without the feature the client would silently speak plain TCP to it.
#[cfg(not(feature = "tls-rustls"))]
fn tls(
    endpoint: &RedisEndpoint,
    target: &Target,
    _config: &mut Config,
) -> Result<Refusal, ConnectError> {
    if target.tls {
        return Err(ConnectError::TlsNotEnabled {
            url: endpoint.redacted_url(),
        });
    }
    Ok(None)
}

fn url_part(e: &ClientError) -> UrlPart {
    let details = e.details().to_ascii_lowercase();
    if details.contains("host") {
        UrlPart::Host
    } else if details.contains("port") {
        UrlPart::Port
    } else if details.contains("database") {
        UrlPart::Database
    } else if details.contains("utf") || details.contains("decode") {
        UrlPart::Password
    } else {
        UrlPart::Syntax
    }
}

/// Names what went wrong with the first connection.
async fn classify(
    error: ClientError,
    endpoint: &RedisEndpoint,
    target: &Target,
    user: String,
    refusal: Refusal,
) -> ConnectError {
    let address = target.address.clone();
    #[cfg(feature = "tls-rustls")]
    if let Some(refused) = refusal.and_then(|r| r.lock().ok().and_then(|mut r| r.take())) {
        return ConnectError::CertificateNotTrusted {
            address,
            source: Cause::new(refused),
        };
    }
    #[cfg(not(feature = "tls-rustls"))]
    let _ = refusal;
    match error.kind() {
        ErrorKind::Auth => ConnectError::AuthRefused {
            address,
            user,
            source: Cause::new(error),
        },
        _ if transport(error.kind()) => {
            // The client reports a refused TCP connection, a failed handshake and a server that
            // hangs up alike: a plain TCP connection tells them apart.
            if !accepts_tcp(target, endpoint).await {
                ConnectError::Unreachable {
                    address,
                    source: Cause::new(error),
                }
            } else if target.tls {
                ConnectError::TlsHandshake {
                    address,
                    source: Cause::new(error),
                }
            } else {
                ConnectError::NotRedis {
                    address,
                    source: Cause::new(error),
                }
            }
        }
        _ => ConnectError::Failed {
            address,
            source: Cause::new(error),
        },
    }
}

/// Whether the error is one of the connection itself (not an answer of the server).
fn transport(kind: &ErrorKind) -> bool {
    #[cfg(feature = "tls-rustls")]
    if matches!(kind, ErrorKind::Tls) {
        return true;
    }
    matches!(
        kind,
        ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled
    )
}

/// Whether something accepts TCP connections at the target, within the connect timeout.
async fn accepts_tcp(target: &Target, endpoint: &RedisEndpoint) -> bool {
    let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
    matches!(
        tokio::time::timeout(endpoint.connect_timeout, connect).await,
        Ok(Ok(_))
    )
}
