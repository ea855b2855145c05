//! Applies the SPANE SQL migrations to a database, for deployments that migrate before they
//! start the engine (`SqlStoreOptions::run_migrations(false)`).
//!
//! ```text
//! spane-migrate [--database-url URL] [--schema NAME]
//! cargo xtask migrate [--database-url URL] [--schema NAME]
//! ```
//!
//! The URL defaults to `SPANE_DATABASE_URL`, then `DATABASE_URL`. Running it again is
//! harmless: applied migrations are skipped.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use spane_store::{SqlStore, SqlStoreOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut url = std::env::var("SPANE_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok();
    let mut schema = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value) {
            ("--database-url", Some(v)) => url = Some(v),
            ("--schema", Some(v)) => schema = Some(v),
            _ => {
                eprintln!("usage: spane-migrate [--database-url URL] [--schema NAME]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(url) = url else {
        eprintln!("spane-migrate: no database: pass --database-url or set DATABASE_URL");
        return ExitCode::from(2);
    };
    let mut options = SqlStoreOptions::default().run_migrations(true);
    if let Some(s) = schema.clone() {
        options = options.schema(s);
    }
    match SqlStore::connect(&url, options).await {
        Ok(_) => {
            println!(
                "spane-migrate: the database is up to date{}",
                schema.map(|s| format!(" (schema {s})")).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spane-migrate: {e}");
            ExitCode::FAILURE
        }
    }
}
