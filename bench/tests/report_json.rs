//! `spane-bench --smoke` runs every backend with tiny workloads and writes a report whose JSON is
//! well-formed and complete (this checks the shape, never the figures).

use std::process::Command;

use serde_json::Value;

const FIELDS: [&str; 15] = [
    "workload",
    "backend",
    "workers",
    "executions",
    "nodes",
    "wall_s",
    "nodes_per_s",
    "hop_p50_ms",
    "hop_p99_ms",
    "redis_cmds_per_node",
    "round_trips_per_node",
    "redis_cpu_us_per_node",
    "client_cpu_us_per_node",
    "rss_mb",
    "all_completed",
];

#[test]
fn the_smoke_run_writes_a_complete_report() {
    let out = std::env::temp_dir().join(format!("spane-bench-{}.json", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_spane-bench"))
        .args(["--smoke", "--out"])
        .arg(&out)
        .status()
        .expect("the bench runs");
    assert!(status.success(), "the bench failed: {status}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("JSON written"))
        .expect("well-formed JSON");
    let results = report["results"].as_array().expect("results");
    let workloads = ["b1_chain", "b2_fanout", "b3_latency", "b4_rate", "b5_wide"];
    for backend in ["embedded", "redis-1", "redis-2", "redis+pg"] {
        for w in workloads {
            let r = results
                .iter()
                .find(|r| r["backend"] == backend && r["workload"] == w)
                .unwrap_or_else(|| panic!("no result for {w} on {backend}"));
            for f in FIELDS {
                assert!(r.get(f).is_some(), "{w} on {backend} lacks {f}");
            }
            assert_eq!(r["all_completed"], true, "{w} on {backend}");
            assert!(r["nodes_per_s"].as_f64().unwrap() > 0.0);
            let redis = backend != "embedded";
            assert_eq!(
                r["redis_cmds_per_node"].is_number(),
                redis,
                "{w} on {backend}"
            );
            assert_eq!(
                r["round_trips_per_node"].is_number(),
                redis,
                "{w} on {backend}"
            );
            assert_eq!(
                r["hop_p50_ms"].is_number(),
                w == "b3_latency",
                "{w} on {backend}"
            );
        }
    }
    let ceiling = &report["ceiling"];
    assert!(ceiling["get_rps_p1"].as_f64().unwrap() > 0.0);
    assert!(ceiling["get_rps_p16"].as_f64().unwrap() > 0.0);
    assert!(report["peers"].is_array());
    assert!(out.with_extension("svg").exists());
    let _ = std::fs::remove_file(out.with_extension("svg"));
    let _ = std::fs::remove_file(out);
}
