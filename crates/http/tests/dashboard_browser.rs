//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver).
//! It starts an execution from the page and sees its nodes turn completed in the DAG, then
//! opens a failed execution's dead-letter item, retries it and sees the execution complete,
//! follows a sub-workflow node to its child execution (and back), and sees schedules listed
//! with their last fire and removes one. Screenshots go to `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without
//! `chromedriver` on the PATH the test fails with a one-line message.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use spane::events::LocalBus;
use spane::prelude::*;
use spane_http::HttpConfig;

/// A chromedriver this test started; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

async fn start_driver() -> Driver {
    let Some(binary) = find_on_path("chromedriver") else {
        panic!(
            "chromedriver not found on PATH: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does it)"
        );
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    // Ready when its status endpoint answers.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{}/status", driver.url)).send().await
            && r.status().is_success()
        {
            return driver;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not answer within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling a process we cannot await
    }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let chromium = find_on_path("chromium").map(|p| p.display().to_string());
    let mut options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1440,900", "--hide-scrollbars"]
    });
    if let Some(binary) = chromium {
        options["binary"] = json!(binary);
    }
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(page: &Client, name: &str) {
    let png = page.screenshot().await.unwrap();
    std::fs::write(screenshots_dir().join(name), png).unwrap();
}

/// Clicks the element, finding it again when the page re-rendered it meanwhile (the DAG is
/// drawn again on every event).
async fn click(page: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let attempt = async { page.find(Locator::Css(css)).await?.click().await };
        match attempt.await {
            Ok(()) => return,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "cannot click {css}: {e}"
            ),
        }
    }
}

async fn wait_for(page: &Client, css: &str) {
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {DEADLINE:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_executions_live_dead_letters_sub_workflows_and_schedules() {
    let driver = start_driver().await;
    let gate = Gate::new();
    let failing = Arc::new(AtomicBool::new(false));
    let engine = embedded(
        registry(&gate, &failing),
        Arc::new(LocalBus::with_journal(4096, 10_000)),
    );
    let server = serve(engine.clone(), HttpConfig::new()).await;
    let c = reqwest::Client::new();
    let fan = json!({
        "id": "orders", "name": "Order processing",
        "nodes": [
            { "id": "validate", "type": "pass", "inputs": [], "outputs": ["price", "stock", "fraud-check"] },
            { "id": "price", "type": "pass", "inputs": ["validate"], "outputs": ["approve"] },
            { "id": "stock", "type": "wait", "inputs": ["validate"], "outputs": ["approve"] },
            { "id": "fraud-check", "type": "pass", "inputs": ["validate"], "outputs": ["approve"] },
            { "id": "approve", "type": "pass", "inputs": ["price", "stock", "fraud-check"], "outputs": ["notify"] },
            { "id": "notify", "type": "pass", "inputs": ["approve"], "outputs": [] }
        ]
    });
    register(&c, &server.url, &fan).await;
    register(&c, &server.url, &chain("import", ["pass", "flaky", "pass"])).await;
    // Some history for the table.
    for n in 0..3 {
        let id = execute(&c, &server.url, "import", json!({ "batch": n })).await;
        engine.wait_for_execution(id, DEADLINE).await.unwrap();
    }

    let page = browser(&driver).await;
    page.goto(&format!("{}/", server.url)).await.unwrap();
    wait_for(&page, "tr[data-execution-id]").await;
    wait_for(&page, "#wf option[value='orders']").await;
    screenshot(&page, "dashboard-executions.png").await;

    // Start an execution from the page: it opens the execution's DAG.
    click(&page, "#wf option[value='orders']").await;
    click(&page, "#start").await;
    wait_for(&page, ".node[data-node-id='stock'][data-state='running']").await;
    wait_for(&page, ".node[data-node-id='price'][data-state='completed']").await;
    assert!(
        page.find(Locator::Css(
            ".node[data-node-id='notify'][data-state='pending']"
        ))
        .await
        .is_ok(),
        "notify waits for the join"
    );
    screenshot(&page, "dashboard-execution-running.png").await;
    // Why is it not progressing: `stock` runs (it waits for the gate), `approve` waits for it.
    click(&page, "#why").await;
    wait_for(&page, "#why-panel .summary").await;
    wait_for(&page, "#why-panel li[data-why-node='stock']").await;
    wait_for(
        &page,
        "#why-panel li[data-why-node='approve'] [data-kind='waitingForParents']",
    )
    .await;
    let approve = page
        .find(Locator::Css("#why-panel li[data-why-node='approve']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        approve.contains("waits for stock (running)"),
        "approve waits for stock: {approve:?}"
    );
    screenshot(&page, "dashboard-why.png").await;
    gate.open(1);
    for node in [
        "validate",
        "price",
        "stock",
        "fraud-check",
        "approve",
        "notify",
    ] {
        wait_for(
            &page,
            &format!(".node[data-node-id='{node}'][data-state='completed']"),
        )
        .await;
    }
    wait_for(&page, "#status .badge.completed").await;
    click(&page, ".node[data-node-id='approve']").await;
    wait_for(&page, "#detail h2").await;
    screenshot(&page, "dashboard-execution-completed.png").await;
    let first = page.current_url().await.unwrap().to_string();
    // Re-run from `approve`: a new execution that keeps the nodes above it.
    click(&page, "#rerun-from").await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while page.current_url().await.unwrap().as_str() == first {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the re-run did not open the new execution"
        );
        tokio::task::yield_now().await;
    }
    for node in ["stock", "approve", "notify"] {
        wait_for(
            &page,
            &format!(".node[data-node-id='{node}'][data-state='completed']"),
        )
        .await;
    }
    wait_for(&page, "#status .badge.completed").await;
    let rerun_id: ExecutionId = page
        .current_url()
        .await
        .unwrap()
        .fragment()
        .and_then(|f| f.strip_prefix("/executions/"))
        .expect("an execution page")
        .parse()
        .unwrap();
    let rerun = engine.get_execution(rerun_id).await.unwrap().unwrap();
    assert_eq!(rerun.status, ExecutionStatus::Completed);
    assert_eq!(
        rerun.node_results["stock"].attempts, 0,
        "stock was kept, not run"
    );
    screenshot(&page, "dashboard-rerun.png").await;

    // A failed execution: its dead-letter item is retried from the DLQ page.
    failing.store(true, Ordering::SeqCst);
    let failed = execute(&c, &server.url, "import", json!({ "batch": 99 })).await;
    engine.wait_for_execution(failed, DEADLINE).await.unwrap();
    page.goto(&format!("{}/#/executions/{failed}", server.url))
        .await
        .unwrap();
    wait_for(&page, ".node[data-node-id='b'][data-state='failed']").await;
    click(&page, ".node[data-node-id='b']").await;
    wait_for(&page, "#detail .error-text").await;
    screenshot(&page, "dashboard-execution-failed.png").await;
    page.goto(&format!("{}/#/dlq", server.url)).await.unwrap();
    let row = format!("tr[data-dlq='{failed}/b']");
    wait_for(&page, &row).await;
    screenshot(&page, "dashboard-dlq.png").await;
    failing.store(false, Ordering::SeqCst);
    page.find(Locator::Css(&format!("{row} button[data-retry]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The retry opens the execution, which runs again and completes.
    wait_for(&page, ".node[data-node-id='c'][data-state='completed']").await;
    wait_for(&page, "#status .badge.completed").await;
    let record = engine.get_execution(failed).await.unwrap().unwrap();
    assert_eq!(record.status, ExecutionStatus::Completed);

    // A sub-workflow: the parent's node links to its child, whose page shows its nodes
    // completed and links back to the parent.
    register(&c, &server.url, &chain("payment", ["pass", "pass", "pass"])).await;
    let checkout = json!({
        "id": "checkout", "name": "Checkout",
        "nodes": [
            { "id": "cart", "type": "pass", "inputs": [], "outputs": ["pay"] },
            { "id": "pay", "type": "sub-workflow", "config": { "workflowId": "payment" },
              "inputs": ["cart"], "outputs": ["ship"] },
            { "id": "ship", "type": "pass", "inputs": ["pay"], "outputs": [] }
        ]
    });
    register(&c, &server.url, &checkout).await;
    let parent = execute(&c, &server.url, "checkout", json!({ "total": 64 })).await;
    engine.wait_for_execution(parent, DEADLINE).await.unwrap();
    let child = engine.child_executions(parent).await.unwrap()[0];
    page.goto(&format!("{}/#/executions/{parent}", server.url))
        .await
        .unwrap();
    wait_for(&page, ".node[data-node-id='ship'][data-state='completed']").await;
    wait_for(
        &page,
        &format!(".node[data-node-id='pay'] .child-link[data-child-id='{child}']"),
    )
    .await;
    click(&page, ".node[data-node-id='pay'] rect").await;
    wait_for(&page, &format!("#detail a[href='#/executions/{child}']")).await;
    screenshot(&page, "dashboard-subworkflow-parent.png").await;
    click(&page, ".node[data-node-id='pay'] .child-link text").await;
    for node in ["a", "b", "c"] {
        wait_for(
            &page,
            &format!(".node[data-node-id='{node}'][data-state='completed']"),
        )
        .await;
    }
    assert!(
        page.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with(&format!("#/executions/{child}")),
        "the link opens the child's page"
    );
    wait_for(
        &page,
        &format!("#parent-link[href='#/executions/{parent}']"),
    )
    .await;
    screenshot(&page, "dashboard-subworkflow-child.png").await;

    // Schedules: one that fires every second shows its last fire and execution; one is
    // removed from the page.
    register(&c, &server.url, &chain("report", ["pass", "pass", "pass"])).await;
    for body in [
        json!({ "workflowId": "report", "cron": "* * * * * *", "data": { "kind": "probe" } }),
        json!({ "workflowId": "report", "cron": "0 9 * * 1-5", "timezone": "Europe/London" }),
        json!({ "workflowId": "import", "cron": "30 2 * * *", "catchUp": "skip" }),
    ] {
        let r = c
            .post(format!("{}/schedules", server.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let r = c
        .post(format!(
            "{}/workflows/report/scheduled-executions",
            server.url
        ))
        .json(&json!({ "at": "2099-01-01T00:00:00Z" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    page.goto(&format!("{}/#/schedules", server.url))
        .await
        .unwrap();
    let every_second = "tr[data-schedule-id='schedule:report:* * * * * *']";
    wait_for(&page, every_second).await;
    // The page refreshes itself; the first fire shows up with its execution.
    wait_for(&page, &format!("{every_second} a.last-execution")).await;
    wait_for(&page, "tr[data-schedule-id='schedule:report:0 9 * * 1-5']").await;
    screenshot(&page, "dashboard-schedules.png").await;
    click(&page, &format!("{every_second} button[data-remove]")).await;
    page.accept_alert().await.unwrap();
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(
            "tr[data-schedule-id='schedule:report:0 9 * * 1-5']",
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while page.find(Locator::Css(every_second)).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the removed schedule left the table"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        engine
            .get_schedule("schedule:report:* * * * * *")
            .await
            .unwrap()
            .is_none()
    );
    page.close().await.unwrap();
}
