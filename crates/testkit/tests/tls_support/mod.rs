//! A `redis-server` of the test's own that speaks only TLS, with certificates made for it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fred::prelude::{Client, ClientLike};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use spane_redis::{ConnectError, RedisEndpoint, connect};
use spane_testkit::process;
use tokio::time::Instant;

/// How long a started server may take to answer `PING`.
const STARTUP: Duration = Duration::from_secs(15);
/// The pause between two probes while waiting for the server (a poll interval, not a wait).
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// A certificate authority of the test's own.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA's certificate, PEM.
    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate (PEM) and its key (PEM) for `names` (host names or IP addresses), issued
    /// by this CA for `purpose`.
    pub(crate) fn issue(
        &self,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "spane test");
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A `redis-server` listening with TLS only (`--port 0`) on a free port of 127.0.0.1, with a
/// certificate for `127.0.0.1` and `localhost` issued by [`TlsRedis::ca`]; killed and its
/// directory removed on drop.
pub(crate) struct TlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// The CA that issued the server's certificate.
    pub(crate) ca: Ca,
}

impl TlsRedis {
    /// Starts a server that does not ask clients for certificates.
    pub(crate) async fn start() -> Self {
        Self::start_with(&["--tls-auth-clients", "no"]).await
    }

    /// Starts a server with extra arguments (they come last, so they win), and waits until it
    /// answers `PING` over TLS. Tries another port when the first was taken.
    pub(crate) async fn start_with(args: &[&str]) -> Self {
        Self::start_for(&["127.0.0.1", "localhost"], args).await
    }

    /// Starts a server whose certificate names `names` only.
    pub(crate) async fn start_for(names: &[&str], args: &[&str]) -> Self {
        let ca = Ca::new("spane test CA");
        let dir = process::unique_dir("redis-tls").expect("temp dir");
        let (cert, key) = ca.issue(names, ExtendedKeyUsagePurpose::ServerAuth);
        fs::write(dir.join("server.crt"), cert).expect("write certificate");
        fs::write(dir.join("server.key"), key).expect("write key");
        fs::write(dir.join("ca.crt"), ca.pem()).expect("write CA");
        // The probe presents a client certificate, for servers that ask for one.
        let (client_cert, client_key) =
            ca.issue(&["spane-probe"], ExtendedKeyUsagePurpose::ClientAuth);
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn(&dir, port, args);
            let endpoint = RedisEndpoint::new(format!("rediss://127.0.0.1:{port}"))
                .tls_root_pem(ca.pem())
                .tls_client_identity(client_cert.clone(), client_key.clone())
                .connect_timeout(Duration::from_millis(500));
            match wait_ready(&mut child, port, &endpoint, &dir).await {
                Ok(()) => {
                    return Self {
                        child,
                        port,
                        dir,
                        ca,
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("a TLS redis-server did not start: {last_error}");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:<port>`, with `userinfo` (`user:pass@`, `:pass@` or empty).
    pub(crate) fn url(&self, userinfo: &str) -> String {
        format!("rediss://{userinfo}127.0.0.1:{}", self.port)
    }

    /// The server, trusting its CA, as the default user.
    pub(crate) fn endpoint(&self) -> RedisEndpoint {
        RedisEndpoint::new(self.url("")).tls_root_pem(self.ca.pem())
    }

    /// An administrative client (the default user, which needs no password here).
    pub(crate) async fn admin(&self) -> Client {
        connect(&self.endpoint())
            .await
            .unwrap_or_else(|e| panic!("admin connection: {e}\n{}", self.log_tail()))
    }

    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.dir)
    }
}

fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Waits until the server answers `PING` over TLS (or presents its certificate), or exits, or the startup deadline passes.
async fn wait_ready(
    child: &mut Child,
    port: u16,
    endpoint: &RedisEndpoint,
    dir: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    loop {
        match connect(endpoint).await {
            Ok(client) => {
                let pong: Result<String, _> = client.ping(None).await;
                let _ = client.quit().await;
                if pong.as_deref() == Ok("PONG") {
                    return Ok(());
                }
            }
            // It presented its certificate (issued for other names than the URL's): it is up.
            Err(ConnectError::CertificateNotTrusted { .. }) => return Ok(()),
            Err(_) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server on port {port} exited with {status}; log:\n{}",
                log_tail(dir)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "redis-server on port {port} did not answer PING over TLS within {STARTUP:?}; log:\n{}",
                log_tail(dir)
            ));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn spawn(dir: &Path, port: u16, args: &[&str]) -> Child {
    let program = process::redis_server_program();
    Command::new(&program)
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .arg("--tls-cert-file")
        .arg(dir.join("server.crt"))
        .arg("--tls-key-file")
        .arg(dir.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("ca.crt"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program:?} (set SPANE_REDIS_SERVER or install redis-server): {e}")
        })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    process::free_port().expect("bind port 0")
}
