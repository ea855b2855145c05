//! Processes for tests that need real ones: a free loopback port, and a `redis-server` owned by
//! the test (its own port and data directory) that is killed when dropped.
//!
//! ```no_run
//! use spane_testkit::process::RedisServer;
//!
//! let mut redis = RedisServer::start(&["--maxmemory", "64mb"]).expect("redis-server starts");
//! let url = redis.url(); // redis://127.0.0.1:<port>
//! redis.kill().expect("killed");
//! redis.restart().expect("back on the same port, with the same data directory");
//! # let _ = url;
//! ```

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a started or restarted server may take to answer `PING`.
const STARTUP: Duration = Duration::from_secs(15);
/// The pause between two probes while waiting for a server (a poll interval, not a wait).
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0, read, released.
///
/// Another process may take it before the caller binds it; callers that can, retry with a new
/// port when binding fails (as [`RedisServer::start`] does).
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The `redis-server` program: `$SPANE_REDIS_SERVER` when set, else `redis-server` on the `PATH`.
pub fn redis_server_program() -> String {
    std::env::var("SPANE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// A new directory under the system temp directory, named `spane-<tag>-…`, that no other call
/// (or process) returns. The caller removes it.
pub fn unique_dir(tag: &str) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "spane-{tag}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A `redis-server` process owned by a test: on a free port of 127.0.0.1, with its own data
/// directory (so `--appendonly yes` survives a restart), killed and its directory removed on
/// drop.
///
/// The server always runs with `--bind 127.0.0.1 --save ""` plus the caller's arguments, which
/// come last and so win.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` with `args` (for example `["--appendonly", "yes"]`) on a free port
    /// and waits until it answers `PING`. Retries with another port if the first was taken.
    pub fn start(args: &[&str]) -> io::Result<Self> {
        let mut server = Self {
            child: None,
            port: 0,
            dir: unique_dir("redis")?,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        let mut last_error = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    server.kill_child();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The port it listens on (kept across [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its data directory (the AOF lives here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it answers `PING` with `PONG` right now.
    pub fn ping(&self) -> bool {
        ping(self.port)
    }

    /// Kills it with SIGKILL and reaps it. Writes acknowledged under `--appendfsync always` are
    /// on disk already, so a restart finds them.
    pub fn kill(&mut self) -> io::Result<()> {
        self.kill_child();
        Ok(())
    }

    /// Starts it again on the same port, with the same data directory and arguments (killing the
    /// running process first, if any), and waits until it answers `PING`, that is until it has
    /// loaded its data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill_child();
        // The port was ours a moment ago; a few tries cover a slow release of the socket.
        let deadline = Instant::now() + STARTUP;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    self.kill_child();
                    std::thread::sleep(PROBE_EVERY);
                }
            }
        }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn spawn_and_wait(&mut self) -> io::Result<()> {
        let mut command = Command::new(redis_server_program());
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run {:?} (set SPANE_REDIS_SERVER or install redis-server): {e}",
                    redis_server_program()
                ),
            )
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited with {status} before answering PING; log:\n{}",
                    self.port,
                    self.log_tail()
                )));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "redis-server on port {} did not answer PING within {STARTUP:?}; log:\n{}",
                        self.port,
                        self.log_tail()
                    ),
                ));
            }
            std::thread::sleep(PROBE_EVERY);
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill_child();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends `PING` over a fresh connection; `true` only on `+PONG` (not while loading data).
fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let timeout = Some(Duration::from_millis(500));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
