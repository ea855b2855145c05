//! `spane-faults`: the fault suite (run it with `cargo xtask faults`).
//!
//! ```text
//! spane-faults [--quick] [--only NAME[,NAME...]] [--runs N] [--out FILE] [--database-url URL]
//! ```
//!
//! Starts its own `redis-server` per fault (on a free port, its own data directory) and the
//! `spane-test-worker` processes built beside it, injects each fault `N` times (default 100,
//! `--quick` 10), prints a Markdown table and writes the JSON report to `FILE`
//! (default `target/faults/latest.json`). Exits 1 when a fault lost or doubled anything, or a
//! run could not be carried out.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use anyhow::{Context, bail};
use spane_testkit::faults::{FAULTS, SuiteOptions, TABLE_HEADER, run_suite};

fn main() -> anyhow::Result<()> {
    let mut quick = false;
    let mut runs = None;
    let mut only = Vec::new();
    let mut out = "target/faults/latest.json".to_owned();
    let mut database_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--quick" => quick = true,
            "--runs" => {
                runs = Some(
                    args.next()
                        .context("--runs needs a number")?
                        .parse::<usize>()
                        .context("--runs takes a number")?,
                )
            }
            "--only" => only.extend(
                args.next()
                    .context("--only needs a fault name")?
                    .split(',')
                    .map(str::to_owned),
            ),
            "--out" => out = args.next().context("--out needs a file")?,
            "--database-url" => {
                database_url = Some(args.next().context("--database-url needs a URL")?)
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    for name in &only {
        if !FAULTS.iter().any(|f| f.name == name) {
            let known: Vec<&str> = FAULTS.iter().map(|f| f.name).collect();
            bail!("unknown fault {name:?}; known: {}", known.join(", "));
        }
    }
    let runs = runs.unwrap_or(if quick { 10 } else { 100 });
    let options = SuiteOptions::new(runs)
        .only(only)
        .quick(quick)
        .database_url(database_url);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let reports = runtime.block_on(run_suite(&options, |report| {
        eprintln!("spane-faults: {}", report.row());
    }));
    println!("\n{TABLE_HEADER}");
    for report in &reports {
        println!("{}", report.row());
    }
    for report in &reports {
        let notes: Vec<String> = report.runs.iter().filter_map(|r| r.note.clone()).collect();
        if let Some(first) = notes.first() {
            println!("\n{}: {first}", report.fault);
        }
    }
    let json = serde_json::json!({
        "runsPerFault": runs,
        "quick": quick,
        "seconds": started.elapsed().as_secs(),
        "faults": reports.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
    });
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {out}"))?;
    println!(
        "\nspane-faults: {} faults in {:.0}s; report in {out}",
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    if reports.iter().all(|r| r.clean()) {
        Ok(())
    } else {
        bail!("a fault lost or doubled something, or a run failed: see the table")
    }
}
