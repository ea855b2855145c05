//! Developer tasks for the SPANE workspace, run with `cargo xtask <task>`.
//!
//! * `ci` checks that Redis and PostgreSQL are reachable, then runs the
//!   format, feature-matrix, lint, test and doctest steps in order, stopping at
//!   the first failure.
//! * `services` only reports whether Redis and PostgreSQL are reachable.
//! * `model` runs the model test of the queue backends with more cases
//!   (`--cases N`) and a given or random seed (`--seed S`).
//! * `faults` runs the fault suite (`spane-faults` of spane-testkit) and writes
//!   `target/faults/latest.json`.
//!
//! The binary uses the standard library only. Service addresses come from
//! `REDIS_URL` (or `SPANE_REDIS_URL`) and `DATABASE_URL` (or
//! `SPANE_DATABASE_URL`), with local defaults.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::env;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
Usage: cargo xtask <task>

Tasks:
  ci         check Redis and PostgreSQL, then run fmt --check, the feature matrix
             (cargo check of the published crates with no default features, and of
             spane with each backend feature alone), then clippy, nextest (profile ci)
             and doctests with all features, stopping at the first failure
  services   report whether Redis and PostgreSQL are reachable
  bench      run the benchmarks (release build): [--quick] [--no-peers] [--backend
             embedded|redis|all|redis-1|redis-2|redis+pg|redis-2+pg] [--workload NAME]...
             [--rate N]... [--rate-secs S] (b4's arrival rates and how long each is held)
             [--out FILE]; `bench http [--quick]`: the HTTP layer's REST and SSE figures;
             see docs/BENCHMARKS.md
  migrate    apply the SQL migrations: [--database-url URL] [--schema NAME]
             (runs spane-store's spane-migrate; URL from DATABASE_URL by default)
  faults     run the fault suite (worker processes killed, stopped and cut off, Redis
             restarted on its AOF, PostgreSQL unreachable, a soak): [--quick] (10 runs
             per fault) [--runs N] (default 100) [--only NAME[,NAME]], after 10,000
             generated hostile definitions (2,000 with --quick); prints the table
             and writes target/faults/latest.json (docs/GUARANTEES.md); needs
             redis-server and PostgreSQL
  model      run the model test of the queue backends (memory and Redis against
             the core rules): [--cases N] (default 500) [--seed S] (default: a
             random seed, printed); needs Redis
  help       print this message

Environment:
  REDIS_URL     (or SPANE_REDIS_URL)     default redis://127.0.0.1:6379
  DATABASE_URL  (or SPANE_DATABASE_URL)  default postgres://postgres@127.0.0.1:5432/test

Start both services locally with: docker compose -f docker/compose.yml up -d";

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Timeout for each connect, read and write while probing a service.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The crates published to crates.io, whose feature sets `ci` checks.
const PUBLISHED: &[&str] = &[
    "spane-core",
    "spane-redis",
    "spane-queue",
    "spane-store",
    "spane-events",
    "spane-triggers",
    "spane-worker",
    "spane-migrations",
    "spane",
    "spane-http",
];

/// Feature sets of the facade checked on their own (each pulls the backend crates' matching
/// feature and nothing else); `--all-features` is covered by clippy and the tests.
const FEATURE_SETS: &[&str] = &["redis", "postgres", "sqlite"];

/// The `ci` steps: a short name and the arguments passed to cargo.
fn ci_steps() -> Vec<(String, Vec<String>)> {
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut steps = vec![("fmt".to_owned(), args(&["fmt", "--all", "--", "--check"]))];
    // The feature matrix: every published crate with no default features (the embedded
    // backends only), then the facade with each backend feature alone.
    let mut bare = args(&["check", "--quiet", "--no-default-features"]);
    for krate in PUBLISHED {
        bare.extend(["-p".to_owned(), (*krate).to_owned()]);
    }
    steps.push(("features: none".to_owned(), bare));
    for set in FEATURE_SETS {
        steps.push((
            format!("features: {set}"),
            args(&[
                "check",
                "--quiet",
                "-p",
                "spane",
                "--no-default-features",
                "--features",
                set,
            ]),
        ));
    }
    steps.extend([
        (
            "clippy".to_owned(),
            args(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        (
            "nextest".to_owned(),
            args(&[
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--profile",
                "ci",
            ]),
        ),
        // Without TLS, a `rediss://` URL is refused with an error naming the feature (the run
        // above has every feature on).
        (
            "nextest: spane-redis without tls-rustls".to_owned(),
            args(&["nextest", "run", "-p", "spane-redis", "--profile", "ci"]),
        ),
        (
            "doctests".to_owned(),
            args(&["test", "--doc", "--workspace", "--all-features"]),
        ),
        // Documentation without warnings (RUSTDOCFLAGS=-D warnings, set in `ci`), as docs.rs
        // builds it (all features).
    ]);
    let mut docs = args(&["doc", "--no-deps", "--all-features", "--quiet"]);
    for krate in PUBLISHED {
        docs.extend(["-p".to_owned(), (*krate).to_owned()]);
    }
    steps.push(("docs".to_owned(), docs));
    // Each published crate packs (a dry run: no upload, no verify build).
    let mut package = args(&["package", "--no-verify", "--allow-dirty", "--quiet"]);
    for krate in PUBLISHED {
        package.extend(["-p".to_owned(), (*krate).to_owned()]);
    }
    steps.push(("package".to_owned(), package));
    steps
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let task = args.first().map(String::as_str);
    let extra = args.get(1..).unwrap_or_default();
    match task {
        Some("ci") if extra.is_empty() => ci(),
        Some("services") if extra.is_empty() => services(),
        Some("migrate") => migrate(extra),
        Some("bench") => bench(extra),
        Some("model") => model(extra),
        Some("faults") => faults(extra),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(name @ ("ci" | "services")) => {
            eprintln!("xtask {name}: takes no arguments, got: {}", extra.join(" "));
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Some(other) => {
            eprintln!("xtask: unknown task `{other}`\n");
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

fn ci() -> ExitCode {
    let redis = Service::redis();
    let postgres = Service::postgres();

    let failures: Vec<Problem> = [&redis, &postgres]
        .into_iter()
        .filter_map(|service| service.check().err())
        .collect();
    if !failures.is_empty() {
        // One line, whether one or both services are missing.
        let line = match failures.as_slice() {
            [a, b] if a.unreachable && b.unreachable => format!(
                "{}; {} — start them (redis-server and postgresql, or docker compose -f \
                 docker/compose.yml up -d) or set REDIS_URL and DATABASE_URL",
                a.message, b.message
            ),
            _ => failures
                .iter()
                .map(|p| format!("{} — {}", p.message, p.hint))
                .collect::<Vec<_>>()
                .join("; "),
        };
        eprintln!("xtask ci: {line}");
        return ExitCode::FAILURE;
    }
    println!(
        "xtask ci: Redis at {} and PostgreSQL at {} are reachable",
        redis.display_addr(),
        postgres.display_addr()
    );

    let root = workspace_root();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let has_nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !has_nextest {
        eprintln!(
            "xtask ci: cargo-nextest is not installed — install it \
             (cargo install cargo-nextest --locked, or see https://nexte.st)"
        );
        return ExitCode::FAILURE;
    }
    let steps = ci_steps();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let total = steps.len();

    for (index, (name, args)) in steps.iter().enumerate() {
        let shown = format!("cargo {}", args.join(" "));
        println!("\n==> [{}/{total}] {name}: {shown}", index + 1);
        let started = Instant::now();
        let status = Command::new(&cargo)
            .args(args)
            .current_dir(&root)
            .env(
                "RUSTDOCFLAGS",
                if name == "docs" { "-D warnings" } else { "" },
            )
            .env("REDIS_URL", &redis.url)
            .env("SPANE_REDIS_URL", &redis.url)
            .env("DATABASE_URL", &postgres.url)
            .env("SPANE_DATABASE_URL", &postgres.url)
            .status();
        let elapsed = started.elapsed();
        timings.push((name.as_str(), elapsed));
        let failure = match status {
            Ok(status) if status.success() => None,
            Ok(status) => Some(match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => format!("was terminated ({status})"),
            }),
            Err(err) => Some(format!("could not be started: {err}")),
        };
        if let Some(why) = failure {
            print_timings(&timings);
            eprintln!(
                "xtask ci: step {}/{total} `{name}` ({shown}) {why} after {}; \
                 later steps were not run",
                index + 1,
                format_duration(elapsed)
            );
            return ExitCode::FAILURE;
        }
    }

    print_timings(&timings);
    delete_test_keys(&redis);
    println!("xtask ci: all {total} steps passed");
    ExitCode::SUCCESS
}

/// Key prefixes the test suites give their Redis keys (each test its own prefix below them).
const TEST_KEY_PATTERNS: [&str; 4] = [
    "spane-test-*",
    "spane-conf-*",
    "spane-stall-*",
    "spane-bench-*",
];

/// Deletes the keys the tests left in Redis (event streams, definitions, failed executions
/// kept for their dead letters), so that repeated CI runs do not grow the shared Redis.
fn delete_test_keys(redis: &Service) {
    const SCRIPT: &str = "local n = 0 \
        for _, p in ipairs(ARGV) do \
          local keys = redis.call('KEYS', p) \
          for i = 1, #keys, 500 do \
            redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys))) \
          end \
          n = n + #keys \
        end \
        return n";
    let result = redis.endpoint().and_then(|ep| {
        let mut stream = ep.connect()?;
        redis_ping(&mut stream, &ep)?;
        let mut command = vec!["EVAL", SCRIPT, "0"];
        command.extend(TEST_KEY_PATTERNS);
        send(&mut stream, &resp_command(&command))?;
        read_line(&mut stream)
    });
    match result {
        Ok(reply) => match reply.strip_prefix(':') {
            Some(n) => println!("xtask ci: deleted {n} Redis keys left by the tests"),
            None => eprintln!(
                "xtask ci: deleting test keys answered `{}`",
                shorten(&reply)
            ),
        },
        Err(why) => eprintln!("xtask ci: could not delete test keys: {why}"),
    }
}

/// `cargo xtask bench`: builds the bench in release and runs it against the services.
fn bench(extra: &[String]) -> ExitCode {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (redis, postgres) = (Service::redis(), Service::postgres());
    let status = Command::new(cargo)
        .args(["run", "--release", "--quiet", "-p", "spane-bench", "--"])
        .args(extra)
        .current_dir(workspace_root())
        .env("REDIS_URL", &redis.url)
        .env("DATABASE_URL", &postgres.url)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask bench: could not run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask faults`: builds the worker and suite binaries of spane-testkit (debug), then
/// runs the suite with `extra`, PostgreSQL from `DATABASE_URL`.
fn faults(extra: &[String]) -> ExitCode {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let postgres = Service::postgres();
    let built = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "spane-testkit", "--bins"])
        .current_dir(workspace_root())
        .status();
    match built {
        Ok(s) if s.success() => {}
        Ok(_) => return ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask faults: could not run cargo: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Hostile definitions first: the generator of crates/core/tests/hostile_definitions.rs,
    // 10,000 cases (2,000 with --quick; CI runs 512).
    let cases = if extra.iter().any(|a| a == "--quick") {
        "2000"
    } else {
        "10000"
    };
    let hostile = Command::new(&cargo)
        .args([
            "test",
            "--quiet",
            "-p",
            "spane-core",
            "--test",
            "hostile_definitions",
        ])
        .args(["--", "--nocapture"])
        .env("PROPTEST_CASES", cases)
        .current_dir(workspace_root())
        .status();
    match hostile {
        Ok(s) if s.success() => {}
        Ok(_) => {
            eprintln!("xtask faults: hostile definitions: a case panicked or hung (see above)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("xtask faults: could not run cargo: {e}");
            return ExitCode::FAILURE;
        }
    }
    let status = Command::new(&cargo)
        .args([
            "run",
            "--quiet",
            "-p",
            "spane-testkit",
            "--bin",
            "spane-faults",
            "--",
        ])
        .args(["--database-url", &postgres.url])
        .args(extra)
        .current_dir(workspace_root())
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask faults: could not run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask model`: runs the model test (crates/testkit/tests/model.rs) with
/// `SPANE_MODEL_CASES` and `SPANE_MODEL_SEED`, under nextest when it is installed.
fn model(extra: &[String]) -> ExitCode {
    const DEFAULT_CASES: u64 = 500;
    let mut cases = DEFAULT_CASES;
    let mut seed = None;
    let mut args = extra.iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--cases" | "--seed" => args.next().and_then(|v| v.parse::<u64>().ok()),
            _ => None,
        };
        match (arg.as_str(), value) {
            ("--cases", Some(n)) if n > 0 => cases = n,
            ("--seed", Some(s)) => seed = Some(s),
            _ => {
                eprintln!(
                    "xtask model: expected [--cases N] [--seed S] (numbers), got: {}",
                    extra.join(" ")
                );
                return ExitCode::from(2);
            }
        }
    }
    // A fresh seed per run unless one is given: the test prints it, and a failure names it.
    let seed = seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_secs()
            ^ u64::from(now.subsec_nanos()).rotate_left(32)
            ^ u64::from(std::process::id())
    });
    let redis = Service::redis();
    if let Err(problem) = redis.check() {
        eprintln!("xtask model: {} — {}", problem.message, problem.hint);
        return ExitCode::FAILURE;
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let has_nextest = Command::new(&cargo)
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let args: &[&str] = if has_nextest {
        &[
            "nextest",
            "run",
            "-p",
            "spane-testkit",
            "--test",
            "model",
            "--no-capture",
        ]
    } else {
        &[
            "test",
            "-p",
            "spane-testkit",
            "--test",
            "model",
            "--",
            "--nocapture",
        ]
    };
    println!(
        "xtask model: {cases} cases, seed {seed}: cargo {}",
        args.join(" ")
    );
    let started = Instant::now();
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .env("REDIS_URL", &redis.url)
        .env("SPANE_REDIS_URL", &redis.url)
        .env("SPANE_MODEL_CASES", cases.to_string())
        .env("SPANE_MODEL_SEED", seed.to_string())
        .status();
    let elapsed = format_duration(started.elapsed());
    match status {
        Ok(s) if s.success() => {
            println!("xtask model: {cases} cases with seed {seed} passed in {elapsed}");
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!(
                "xtask model: failed with seed {seed} after {elapsed} (rerun: cargo xtask model --cases {cases} --seed {seed})"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xtask model: could not run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask migrate`: runs the `spane-migrate` binary of spane-store with the arguments.
fn migrate(extra: &[String]) -> ExitCode {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let postgres = Service::postgres();
    let status = Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "-p",
            "spane-store",
            "--bin",
            "spane-migrate",
            "--",
        ])
        .args(extra)
        .current_dir(workspace_root())
        .env("DATABASE_URL", &postgres.url)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask migrate: could not run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn services() -> ExitCode {
    let mut all_ok = true;
    for service in [Service::redis(), Service::postgres()] {
        match service.check() {
            Ok(detail) => println!(
                "{:<11} {:<22} reachable ({detail}; {})",
                service.name,
                service.display_addr(),
                service.source
            ),
            Err(problem) => {
                all_ok = false;
                println!("{}", problem.message);
                println!("  -> {}", problem.hint);
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_timings(timings: &[(&str, Duration)]) {
    println!("\n==> timings");
    for (name, elapsed) in timings {
        println!("    {name:<10} {:>8}", format_duration(*elapsed));
    }
    let total: Duration = timings.iter().map(|(_, d)| *d).sum();
    println!("    {:<10} {:>8}", "total", format_duration(total));
}

fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:04.1}s", (secs / 60.0).floor(), secs % 60.0)
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

// ---------------------------------------------------------------------------
// Service checks
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Redis,
    Postgres,
}

#[derive(Debug)]
struct Service {
    kind: Kind,
    name: &'static str,
    /// The URL exported to the CI steps.
    url: String,
    /// Where the URL came from, e.g. `from REDIS_URL` or `default`.
    source: String,
    /// The main environment variable for the URL.
    var: &'static str,
    default_url: &'static str,
    /// What to do when the service is not reachable.
    hint: &'static str,
}

impl Service {
    fn redis() -> Self {
        let (url, source) = url_from_env(&["REDIS_URL", "SPANE_REDIS_URL"], DEFAULT_REDIS_URL);
        Self {
            kind: Kind::Redis,
            name: "Redis",
            url,
            source,
            var: "REDIS_URL",
            default_url: DEFAULT_REDIS_URL,
            hint: "start it (redis-server, or docker compose -f docker/compose.yml up -d) \
                   or set REDIS_URL",
        }
    }

    fn postgres() -> Self {
        let (url, source) = url_from_env(
            &["DATABASE_URL", "SPANE_DATABASE_URL"],
            DEFAULT_DATABASE_URL,
        );
        Self {
            kind: Kind::Postgres,
            name: "PostgreSQL",
            url,
            source,
            var: "DATABASE_URL",
            default_url: DEFAULT_DATABASE_URL,
            hint: "start it (pg_ctlcluster <version> main start, or docker compose -f \
                   docker/compose.yml up -d) or set DATABASE_URL",
        }
    }

    fn endpoint(&self) -> Result<Endpoint, String> {
        match self.kind {
            Kind::Redis => Endpoint::parse(&self.url, &["redis", "rediss"], 6379),
            Kind::Postgres => Endpoint::parse(&self.url, &["postgres", "postgresql"], 5432),
        }
    }

    /// `host:port` for messages (never the credentials).
    fn display_addr(&self) -> String {
        match self.endpoint() {
            Ok(ep) => ep.display_addr(),
            Err(_) => "<invalid URL>".to_owned(),
        }
    }

    /// Probes the service; `Ok` carries a short description of the answer.
    fn check(&self) -> Result<String, Problem> {
        let ep = self.endpoint().map_err(|reason| Problem {
            message: format!(
                "{} URL is not usable ({reason}; {})",
                self.name, self.source
            ),
            hint: format!("set {} to e.g. {}", self.var, self.default_url),
            unreachable: false,
        })?;
        let mut stream = ep.connect().map_err(|reason| Problem {
            message: format!(
                "{} is not reachable at {} ({reason}; {})",
                self.name,
                ep.display_addr(),
                self.source
            ),
            hint: self.hint.to_owned(),
            unreachable: true,
        })?;
        match self.kind {
            // A TCP connect is enough for PostgreSQL.
            Kind::Postgres => Ok("TCP connect".to_owned()),
            // A TLS port would not understand a plain-text PING.
            Kind::Redis if ep.tls => Ok("TCP connect, TLS not probed".to_owned()),
            Kind::Redis => redis_ping(&mut stream, &ep).map_err(|reason| Problem {
                message: format!(
                    "{} at {} did not answer as expected ({reason}; {})",
                    self.name,
                    ep.display_addr(),
                    self.source
                ),
                hint: format!(
                    "check that {} points at a Redis server, with the right credentials",
                    self.var
                ),
                unreachable: false,
            }),
        }
    }
}

/// Why a service check failed, and what to do about it.
#[derive(Debug)]
struct Problem {
    /// What is wrong, for example `Redis is not reachable at 127.0.0.1:6379 (...)`.
    message: String,
    /// What to install, start or set.
    hint: String,
    /// Nothing answered at the address (as opposed to a bad URL or answer).
    unreachable: bool,
}

/// The first non-empty variable among `names`, else `default`.
fn url_from_env(names: &[&str], default: &str) -> (String, String) {
    for name in names {
        if let Ok(value) = env::var(name) {
            let value = value.trim();
            if !value.is_empty() {
                return (value.to_owned(), format!("from {name}"));
            }
        }
    }
    (default.to_owned(), "default".to_owned())
}

fn redis_ping(stream: &mut TcpStream, ep: &Endpoint) -> Result<String, String> {
    if let Some(password) = &ep.password {
        let mut auth = vec!["AUTH"];
        if let Some(user) = ep.user.as_deref().filter(|u| !u.is_empty()) {
            auth.push(user);
        }
        auth.push(password);
        send(stream, &resp_command(&auth))?;
        let reply = read_line(stream)?;
        if reply != "+OK" {
            return Err(format!("AUTH answered `{}`", shorten(&reply)));
        }
    }
    send(stream, b"PING\r\n")?;
    let reply = read_line(stream)?;
    if reply == "+PONG" {
        Ok("PONG".to_owned())
    } else {
        Err(format!(
            "PING answered `{}` instead of +PONG",
            shorten(&reply)
        ))
    }
}

/// Encodes a command as a RESP array of bulk strings.
fn resp_command(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn send(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    stream
        .write_all(bytes)
        .map_err(|err| format!("write failed: {err}"))
}

/// Reads one reply line (without the trailing CRLF).
fn read_line(stream: &mut TcpStream) -> Result<String, String> {
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) => return Err(format!("no answer: {err}")),
        }
    }
    if buf.is_empty() {
        return Err("connection closed without an answer".to_owned());
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim_end().to_owned())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// The parts of a `scheme://[user[:password]@]host[:port][/path]` URL that
/// the checks need.
#[derive(Debug)]
struct Endpoint {
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<String>,
    tls: bool,
}

impl Endpoint {
    fn parse(url: &str, schemes: &[&str], default_port: u16) -> Result<Self, String> {
        let expected = || format!("expected a {}:// URL", schemes[0]);
        let (scheme, rest) = url.split_once("://").ok_or_else(expected)?;
        let scheme = scheme.to_ascii_lowercase();
        if !schemes.contains(&scheme.as_str()) {
            return Err(expected());
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => {
                    (Some(percent_decode(user)), Some(percent_decode(password)))
                }
                None => (Some(percent_decode(info)), None),
            },
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            // IPv6 literal: [::1]:6379
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("unterminated IPv6 address")?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("the URL has no host (Unix sockets are not supported)".to_owned());
        }
        let port = match port {
            None | Some("") => default_port,
            Some(port) => port
                .parse()
                .map_err(|_| format!("invalid port `{}`", shorten(port)))?,
        };
        Ok(Self {
            host: percent_decode(host),
            port,
            user,
            password,
            tls: scheme == "rediss",
        })
    }

    fn display_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Connects to the first address that accepts, with timeouts set.
    fn connect(&self) -> Result<TcpStream, String> {
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|err| format!("cannot resolve `{}`: {err}", self.host))?;
        let mut last_error = format!("`{}` resolved to no address", self.host);
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
                Ok(stream) => {
                    let timeouts = stream
                        .set_read_timeout(Some(PROBE_TIMEOUT))
                        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)));
                    timeouts.map_err(|err| format!("cannot set timeouts: {err}"))?;
                    return Ok(stream);
                }
                Err(err) if self.host.parse::<IpAddr>().is_ok() => last_error = error_text(&err),
                Err(err) => last_error = format!("{addr}: {}", error_text(&err)),
            }
        }
        Err(last_error)
    }
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    text.to_lowercase()
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
