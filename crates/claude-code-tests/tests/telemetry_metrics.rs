//! Metrics move for real work: a real CLI turn against the mock API moves the session,
//! turn, token, cost and control-request metrics; a `kill -9` restart and an exceeded
//! restart intensity move the supervisor's. A `metrics-util` debugging recorder is the
//! process's recorder; its snapshots drain values, so every snapshot is merged into one
//! running total that the (parallel) tests read.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use claude_code::telemetry::metric;
use claude_code::{Session, SessionSpec, Supervisor, SupervisorError};
use claude_code_tests::{kill_9, wait_restarted, Reply, Script, TestEnv};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

fn fake_cli() -> &'static Path {
    env!("CARGO_BIN_EXE_fake-claude").as_ref()
}

/// `name{label=value,…}` with labels sorted.
type Key = String;

#[derive(Default)]
struct Totals {
    counters: HashMap<Key, u64>,
    gauges: HashMap<Key, f64>,
    histograms: HashMap<Key, Vec<f64>>,
}

struct Metrics {
    snapshotter: Snapshotter,
    totals: Mutex<Totals>,
}

fn recorder() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder in this test binary");
        claude_code::telemetry::describe_metrics();
        Metrics {
            snapshotter,
            totals: Mutex::default(),
        }
    })
}

fn key_of(key: &metrics::Key) -> Key {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

/// Merges a fresh snapshot into the running totals and reads them.
fn read<T>(f: impl FnOnce(&Totals) -> T) -> T {
    let m = recorder();
    let mut totals = m.totals.lock().expect("lock");
    for (ck, _, _, value) in m.snapshotter.snapshot().into_vec() {
        let key = key_of(ck.key());
        match value {
            DebugValue::Counter(n) => *totals.counters.entry(key).or_default() += n,
            DebugValue::Gauge(g) => *totals.gauges.entry(key).or_default() += g.into_inner(),
            DebugValue::Histogram(values) => totals
                .histograms
                .entry(key)
                .or_default()
                .extend(values.into_iter().map(|v| v.into_inner())),
        }
    }
    f(&totals)
}

fn counter(key: &str) -> u64 {
    read(|t| t.counters.get(key).copied().unwrap_or(0))
}

fn histogram_len(key: &str) -> usize {
    read(|t| t.histograms.get(key).map_or(0, Vec::len))
}

fn gauge(key: &str) -> f64 {
    read(|t| t.gauges.get(key).copied().unwrap_or(0.0))
}

#[tokio::test]
async fn a_real_turn_moves_session_turn_token_and_cost_metrics() {
    recorder();
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::text("hello").usage(100, 20));
    let started = counter(&format!("{}{{}}", metric::SESSIONS_STARTED));
    let turns = counter(&format!("{}{{outcome=success}}", metric::TURNS));
    let input = counter(&format!("{}{{kind=input}}", metric::TOKENS));
    let output = counter(&format!("{}{{kind=output}}", metric::TOKENS));
    let durations = histogram_len(&format!("{}{{}}", metric::TURN_DURATION));
    let set_models = counter(&format!(
        "{}{{direction=outbound,outcome=ok,subtype=set_model}}",
        metric::CONTROL_REQUESTS
    ));

    let session = Session::start(env.options()).await.expect("start");
    let summary = session
        .stream("hi")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert_eq!(summary.text, "hello");
    session
        .set_model("claude-sonnet-4-5".to_string())
        .await
        .expect("set_model");
    session.stop().await.expect("stop");

    assert!(counter(&format!("{}{{}}", metric::SESSIONS_STARTED)) > started);
    assert!(counter(&format!("{}{{outcome=success}}", metric::TURNS)) > turns);
    assert!(counter(&format!("{}{{kind=input}}", metric::TOKENS)) >= input + 100);
    assert!(counter(&format!("{}{{kind=output}}", metric::TOKENS)) >= output + 20);
    assert!(histogram_len(&format!("{}{{}}", metric::TURN_DURATION)) > durations);
    assert!(
        counter(&format!(
            "{}{{direction=outbound,outcome=ok,subtype=set_model}}",
            metric::CONTROL_REQUESTS
        )) > set_models
    );
    let cost = summary.cost_usd().unwrap_or(0.0);
    assert!(
        gauge(&format!("{}{{}}", metric::COST_USD)) >= cost - 1e-12,
        "the cost gauge holds at least this turn's ${cost}"
    );
    assert!(counter(&format!("{}{{reason=stopped}}", metric::SESSION_ENDS)) >= 1);
}

#[tokio::test]
async fn a_kill_9_restart_moves_the_restart_and_crash_counters() {
    recorder();
    let env = TestEnv::new(Script::new()).await;
    let sup = Supervisor::builder()
        .name("metrics-restart")
        .child(SessionSpec::new("worker").options(env.options_for(fake_cli())))
        .start()
        .await
        .expect("start");
    let worker = sup.session("worker");
    let crashed = counter(&format!("{}{{reason=crashed}}", metric::SESSION_ENDS));
    kill_9(worker.pid().await.expect("pid").expect("some"));
    wait_restarted(&sup, "worker", 1).await;

    let labels = "child=worker,supervisor=metrics-restart";
    assert_eq!(counter(&format!("{}{{{labels}}}", metric::RESTARTS)), 1);
    assert_eq!(
        counter(&format!("{}{{{labels}}}", metric::CHILD_CRASHES)),
        1
    );
    assert!(counter(&format!("{}{{reason=crashed}}", metric::SESSION_ENDS)) > crashed);
    sup.stop().await.expect("stop");
}

#[tokio::test]
async fn exceeding_the_intensity_moves_its_counter() {
    recorder();
    let env = TestEnv::new(Script::new()).await;
    let sup = Supervisor::builder()
        .name("metrics-intensity")
        .max_restarts(0)
        .child(SessionSpec::new("fragile").options(env.options_for(fake_cli())))
        .start()
        .await
        .expect("start");
    kill_9(
        sup.session("fragile")
            .pid()
            .await
            .expect("pid")
            .expect("some"),
    );
    let ended = tokio::time::timeout(Duration::from_secs(30), sup.closed())
        .await
        .expect("the supervisor ends");
    assert!(
        matches!(ended, Err(SupervisorError::MaxRestartIntensity { .. })),
        "{ended:?}"
    );
    assert_eq!(
        counter(&format!(
            "{}{{supervisor=metrics-intensity}}",
            metric::INTENSITY_EXCEEDED
        )),
        1
    );
}

#[tokio::test]
async fn sampling_reads_the_rss_of_live_clis() {
    recorder();
    let env = TestEnv::new(Script::new()).await;
    let session = Session::start(env.options_for(fake_cli()))
        .await
        .expect("start");
    let pid = session.pid().expect("pid");
    let sample = claude_code::telemetry::sample_cli_rss();
    let own = claude_code::telemetry::cli_rss_bytes(pid).expect("readable");
    assert!(sample.processes >= 1);
    assert!(sample.total_bytes >= own && own > 0, "{sample:?} vs {own}");
    session.stop().await.expect("stop");
    assert_eq!(claude_code::telemetry::cli_rss_bytes(pid), None, "reaped");
}
