//! Telemetry: the one place that knows how sessions and supervisors are observed.
//!
//! Two facades, both no-ops until the application installs something:
//! - **`tracing`**: a `claude_code.session` span for each session's lifetime (fields
//!   `pid`, `session`), a `claude_code.turn` span per turn (`turn`, `session`,
//!   `input_tokens`, `output_tokens`, `cost_usd`, `duration_ms`, `outcome`), a
//!   `claude_code.control` span per control request in either direction (`direction`,
//!   `subtype`, `request_id`, `duration_ms`, `outcome`) and a `claude_code.tool_use`
//!   span per tool call (`tool`, `tool_use_id`, `session`, `duration_ms`, `outcome`);
//!   events for session start and stop, child start, crash, restart and
//!   restart intensity exceeded. Everything is a structured field; no span or event ever
//!   carries an option value, environment variable, prompt or API key.
//! - **`metrics`**: the counters, gauges and histograms named in [`metric`]. Install any
//!   `metrics` recorder, or with the `prometheus` cargo feature call
//!   `install_prometheus` / `serve_prometheus`.
//!
//! The session actor, its streams and the supervisor actor call the small
//! `pub(crate)` hooks below at turn start and finish, on control requests, on tool
//! results and on the restart path; what to record and under which name is decided
//! here only.
//!
//! ```no_run
//! // Logs with spans (needs `tracing-subscriber` in your application):
//! // tracing_subscriber::fmt().with_env_filter("claude_code=debug").init();
//! claude_code::telemetry::describe_metrics();
//! let rss = claude_code::telemetry::sample_cli_rss();
//! println!("{} CLIs use {} bytes", rss.processes, rss.total_bytes);
//! ```

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram, Unit};
use tracing::{field::Empty, Span};

use crate::protocol::{ContentBlock, Message, ResultMessage};

/// Metric names. Labels are listed beside each; none carries a secret or a prompt.
pub mod metric {
    /// Gauge: sessions whose CLI process is alive.
    pub const SESSIONS_LIVE: &str = "claude_code_sessions_live";
    /// Counter: sessions started (CLI spawned).
    pub const SESSIONS_STARTED: &str = "claude_code_sessions_started_total";
    /// Counter: session ends, label `reason` (`stopped`, `crashed`, `init_failed`).
    pub const SESSION_ENDS: &str = "claude_code_session_ends_total";
    /// Counter: finished turns, label `outcome` (`success`, a CLI error subtype such as
    /// `error_max_turns`, or `aborted` when no result arrived).
    pub const TURNS: &str = "claude_code_turns_total";
    /// Histogram: turn wall time in seconds (from sending the prompt to its result).
    pub const TURN_DURATION: &str = "claude_code_turn_duration_seconds";
    /// Counter: tokens, label `kind` (`input`, `output`, `cache_read`, `cache_creation`).
    pub const TOKENS: &str = "claude_code_tokens_total";
    /// Gauge (monotonic): USD spent, as the CLI reports it.
    pub const COST_USD: &str = "claude_code_cost_usd";
    /// Histogram: USD per turn.
    pub const TURN_COST_USD: &str = "claude_code_turn_cost_usd";
    /// Gauge: turns waiting behind a running turn, over all sessions.
    pub const TURNS_QUEUED: &str = "claude_code_turns_queued";
    /// Counter: control requests, labels `direction` (`outbound`: SDK → CLI, `inbound`:
    /// CLI → SDK), `subtype`, `outcome` (`ok`, `error`).
    pub const CONTROL_REQUESTS: &str = "claude_code_control_requests_total";
    /// Histogram: control request round-trip (outbound) or answer time (inbound) in
    /// seconds, labels `direction`, `subtype`.
    pub const CONTROL_DURATION: &str = "claude_code_control_request_duration_seconds";
    /// Counter: tool calls that got a result, labels `tool`, `outcome` (`ok`, `error`).
    pub const TOOL_USES: &str = "claude_code_tool_uses_total";
    /// Histogram: time from a tool call to its result in seconds, label `tool`.
    pub const TOOL_DURATION: &str = "claude_code_tool_use_duration_seconds";
    /// Counter: child restarts by a supervisor, labels `supervisor`, `child`.
    pub const RESTARTS: &str = "claude_code_restarts_total";
    /// Counter: child crashes seen by a supervisor, labels `supervisor`, `child`.
    pub const CHILD_CRASHES: &str = "claude_code_child_crashes_total";
    /// Counter: supervisors shut down by their restart intensity, label `supervisor`.
    pub const INTENSITY_EXCEEDED: &str = "claude_code_supervisor_intensity_exceeded_total";
    /// Gauge: resident memory of all live CLI processes in bytes (sampled).
    pub const CLI_RSS: &str = "claude_code_cli_rss_bytes";
    /// Gauge: resident memory of the largest live CLI process in bytes (sampled).
    pub const CLI_RSS_MAX: &str = "claude_code_cli_rss_max_bytes";
    /// Counter: wakes from hibernation, label `supervisor`.
    pub const WAKES: &str = "claude_code_session_wakes_total";
    /// Counter: hibernations, label `supervisor`.
    pub const HIBERNATIONS: &str = "claude_code_session_hibernations_total";
}

/// Registers a description and unit for every metric in [`metric`] with the installed
/// recorder (call it once after installing one; exporters show the descriptions).
pub fn describe_metrics() {
    use metric::*;
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(SESSIONS_LIVE, "Sessions whose claude CLI process is alive");
    describe_counter!(SESSIONS_STARTED, "Sessions started");
    describe_counter!(SESSION_ENDS, "Session ends by reason");
    describe_counter!(TURNS, "Finished turns by outcome");
    describe_histogram!(TURN_DURATION, Unit::Seconds, "Turn wall time");
    describe_counter!(TOKENS, "Tokens by kind");
    describe_gauge!(COST_USD, "USD spent as the CLI reports it (monotonic)");
    describe_histogram!(TURN_COST_USD, "USD per turn");
    describe_gauge!(TURNS_QUEUED, "Turns waiting behind a running turn");
    describe_counter!(
        CONTROL_REQUESTS,
        "Control requests by direction, subtype and outcome"
    );
    describe_histogram!(CONTROL_DURATION, Unit::Seconds, "Control request time");
    describe_counter!(TOOL_USES, "Tool calls that got a result");
    describe_histogram!(
        TOOL_DURATION,
        Unit::Seconds,
        "Time from a tool call to its result"
    );
    describe_counter!(RESTARTS, "Child restarts by a supervisor");
    describe_counter!(CHILD_CRASHES, "Child crashes seen by a supervisor");
    describe_counter!(
        INTENSITY_EXCEEDED,
        "Supervisors shut down by restart intensity"
    );
    describe_gauge!(
        CLI_RSS,
        Unit::Bytes,
        "Resident memory of all live claude CLIs"
    );
    describe_gauge!(
        CLI_RSS_MAX,
        Unit::Bytes,
        "Resident memory of the largest claude CLI"
    );
}

// ---------------------------------------------------------------------------------------
// CLI memory

/// Process ids of live CLIs, for RSS sampling.
static LIVE_PIDS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn live_pids() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    LIVE_PIDS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resident memory of one CLI sample (see [`sample_cli_rss`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RssSample {
    /// Live CLI processes whose memory could be read.
    pub processes: usize,
    /// Their resident memory together, in bytes.
    pub total_bytes: u64,
    /// The largest one's resident memory, in bytes.
    pub max_bytes: u64,
}

/// Resident memory of process `pid` in bytes (`VmRSS` in `/proc/<pid>/status`); `None`
/// when it cannot be read (the process is gone, or this is not Linux).
pub fn cli_rss_bytes(pid: u32) -> Option<u64> {
    crate::procfs::rss_kib(pid).map(|kib| kib.saturating_mul(1024))
}

/// Reads the resident memory of every live CLI this process started and sets the
/// [`metric::CLI_RSS`] and [`metric::CLI_RSS_MAX`] gauges. Supervisors with a health
/// monitor call this on every health round; otherwise call it yourself or use
/// [`spawn_rss_sampler`].
pub fn sample_cli_rss() -> RssSample {
    let pids: Vec<u32> = live_pids().iter().copied().collect();
    let mut sample = RssSample::default();
    for bytes in pids.into_iter().filter_map(cli_rss_bytes) {
        sample.processes += 1;
        sample.total_bytes = sample.total_bytes.saturating_add(bytes);
        sample.max_bytes = sample.max_bytes.max(bytes);
    }
    gauge!(metric::CLI_RSS).set(sample.total_bytes as f64);
    gauge!(metric::CLI_RSS_MAX).set(sample.max_bytes as f64);
    sample
}

/// Spawns a task that calls [`sample_cli_rss`] every `every` until the returned handle
/// is aborted (or the runtime ends). Needs a Tokio runtime.
pub fn spawn_rss_sampler(every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sample_cli_rss();
        }
    })
}

// ---------------------------------------------------------------------------------------
// Sessions and turns

/// How a session's actor ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionEnd {
    Stopped,
    Crashed,
    InitFailed,
}

impl SessionEnd {
    fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Stopped => "stopped",
            SessionEnd::Crashed => "crashed",
            SessionEnd::InitFailed => "init_failed",
        }
    }
}

/// A session's telemetry, owned by its actor: the lifetime span, the live gauge and pid
/// registration, the queue depth it contributes, and the process's cumulative cost (the
/// CLI reports cost per process, so a turn's cost is the difference).
#[derive(Debug)]
pub(crate) struct SessionTelemetry {
    span: Span,
    pid: Option<u32>,
    queued: AtomicUsize,
    last_total_cost: f64,
    turns: u64,
    ended: bool,
}

impl SessionTelemetry {
    /// A CLI was spawned.
    pub(crate) fn new(pid: Option<u32>) -> Self {
        let span = tracing::info_span!("claude_code.session", pid, session = Empty);
        if let Some(pid) = pid {
            live_pids().insert(pid);
        }
        counter!(metric::SESSIONS_STARTED).increment(1);
        gauge!(metric::SESSIONS_LIVE).increment(1.0);
        SessionTelemetry {
            span,
            pid,
            queued: AtomicUsize::new(0),
            last_total_cost: 0.0,
            turns: 0,
            ended: false,
        }
    }

    /// The session's lifetime span (the actor runs inside it).
    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    /// The conversation id became known (or changed).
    pub(crate) fn session_id(&self, id: &str) {
        self.span.record("session", id);
    }

    /// The number of queued turns is now `n`.
    pub(crate) fn queue_depth(&self, n: usize) {
        let old = self.queued.swap(n, Ordering::Relaxed);
        if old != n {
            gauge!(metric::TURNS_QUEUED).increment(n as f64 - old as f64);
        }
    }

    /// A turn was written to the CLI.
    pub(crate) fn turn_started(&mut self, session: Option<&str>) -> TurnTelemetry {
        self.turns += 1;
        let span = tracing::info_span!(
            parent: &self.span,
            "claude_code.turn",
            turn = self.turns,
            session = session.unwrap_or_default(),
            input_tokens = Empty,
            output_tokens = Empty,
            cost_usd = Empty,
            duration_ms = Empty,
            outcome = Empty,
        );
        tracing::debug!(parent: &span, turn = self.turns, "turn started");
        TurnTelemetry {
            span,
            turn: self.turns,
            started: Instant::now(),
            outcome: None,
        }
    }

    /// The turn's result arrived: record tokens and cost.
    pub(crate) fn turn_result(&mut self, turn: &mut TurnTelemetry, result: &ResultMessage) {
        let cost = match result.total_cost_usd {
            Some(total) if total >= self.last_total_cost => {
                let delta = total - self.last_total_cost;
                self.last_total_cost = total;
                delta
            }
            Some(total) => {
                self.last_total_cost = total;
                total
            }
            None => 0.0,
        };
        if let Some(u) = &result.usage {
            counter!(metric::TOKENS, "kind" => "input").increment(u.input_tokens);
            counter!(metric::TOKENS, "kind" => "output").increment(u.output_tokens);
            if let Some(n) = u.cache_read_input_tokens {
                counter!(metric::TOKENS, "kind" => "cache_read").increment(n);
            }
            if let Some(n) = u.cache_creation_input_tokens {
                counter!(metric::TOKENS, "kind" => "cache_creation").increment(n);
            }
            turn.span.record("input_tokens", u.total_input_tokens());
            turn.span.record("output_tokens", u.output_tokens);
        }
        if cost > 0.0 {
            gauge!(metric::COST_USD).increment(cost);
        }
        histogram!(metric::TURN_COST_USD).record(cost);
        turn.span.record("cost_usd", cost);
        if let Some(id) = &result.session_id {
            turn.span.record("session", id.as_str());
        }
        turn.outcome = Some(if result.is_error && result.subtype == "success" {
            "error".to_owned()
        } else {
            result.subtype.clone()
        });
    }

    /// The actor ended (called once; dropping without it counts as `stopped`).
    pub(crate) fn ended(&mut self, how: SessionEnd, error: Option<&crate::Error>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if let Some(pid) = self.pid {
            live_pids().remove(&pid);
        }
        gauge!(metric::SESSIONS_LIVE).decrement(1.0);
        self.queue_depth(0);
        counter!(metric::SESSION_ENDS, "reason" => how.as_str()).increment(1);
        let _in = self.span.enter();
        match (how, error) {
            (SessionEnd::Stopped, _) => {
                tracing::info!(
                    pid = self.pid,
                    turns = self.turns,
                    reason = how.as_str(),
                    "session stopped"
                )
            }
            (_, Some(e)) => {
                tracing::warn!(pid = self.pid, turns = self.turns, reason = how.as_str(), error = %e, "session ended")
            }
            (_, None) => {
                tracing::warn!(
                    pid = self.pid,
                    turns = self.turns,
                    reason = how.as_str(),
                    "session ended"
                )
            }
        }
    }
}

impl Drop for SessionTelemetry {
    fn drop(&mut self) {
        self.ended(SessionEnd::Stopped, None);
    }
}

/// The session finished its initialize handshake.
pub(crate) fn session_ready(span: &Span, pid: Option<u32>, took: Duration) {
    tracing::info!(parent: span, pid, init_ms = millis(took), "session started");
}

/// One running turn; dropping it records the turn's duration and outcome (`aborted`
/// when no result arrived: the CLI died, the session stopped or the turn timed out).
#[derive(Debug)]
pub(crate) struct TurnTelemetry {
    span: Span,
    turn: u64,
    started: Instant,
    outcome: Option<String>,
}

impl Drop for TurnTelemetry {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        let outcome = self.outcome.take().unwrap_or_else(|| "aborted".to_owned());
        histogram!(metric::TURN_DURATION).record(took.as_secs_f64());
        self.span.record("duration_ms", millis(took));
        self.span.record("outcome", outcome.as_str());
        tracing::debug!(parent: &self.span, turn = self.turn, duration_ms = millis(took),
            outcome = outcome.as_str(), "turn finished");
        counter!(metric::TURNS, "outcome" => outcome).increment(1);
    }
}

// ---------------------------------------------------------------------------------------
// Control requests

/// Direction of a control request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    /// SDK → CLI.
    Outbound,
    /// CLI → SDK (a callback the SDK answers).
    Inbound,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// The span of one control request (`request_id` empty when not known here).
pub(crate) fn control_span(direction: Direction, subtype: &str, request_id: Option<&str>) -> Span {
    tracing::debug_span!(
        "claude_code.control",
        direction = direction.as_str(),
        subtype,
        request_id = request_id.unwrap_or_default(),
        duration_ms = Empty,
        outcome = Empty,
    )
}

/// A control request finished (call inside its span).
pub(crate) fn control_done(direction: Direction, subtype: &str, started: Instant, ok: bool) {
    let took = started.elapsed();
    let outcome = if ok { "ok" } else { "error" };
    let span = Span::current();
    span.record("duration_ms", millis(took));
    span.record("outcome", outcome);
    let (direction, subtype) = (direction.as_str(), subtype.to_owned());
    histogram!(metric::CONTROL_DURATION, "direction" => direction, "subtype" => subtype.clone())
        .record(took.as_secs_f64());
    counter!(metric::CONTROL_REQUESTS, "direction" => direction, "subtype" => subtype,
        "outcome" => outcome)
    .increment(1);
}

// ---------------------------------------------------------------------------------------
// Tool uses

/// Times tool calls as a turn's messages pass through its stream: a `tool_use` block
/// opens a span, the matching `tool_result` closes it with its duration and outcome.
/// Runs on the stream consumer's task, where messages are already parsed.
#[derive(Debug, Default)]
pub(crate) struct ToolTimer {
    open: HashMap<String, (String, Instant, Span)>,
}

impl ToolTimer {
    /// Looks at one message of the turn.
    pub(crate) fn observe(&mut self, message: &Message) {
        match message {
            Message::Assistant(a) => {
                for block in &a.message.content {
                    if let ContentBlock::ToolUse(t) = block {
                        let span = tracing::debug_span!(
                            "claude_code.tool_use",
                            tool = t.name.as_str(),
                            tool_use_id = t.id.as_str(),
                            session = a.session_id.as_deref().unwrap_or_default(),
                            duration_ms = Empty,
                            outcome = Empty,
                        );
                        self.open
                            .insert(t.id.clone(), (t.name.clone(), Instant::now(), span));
                    }
                }
            }
            Message::User(u) if !self.open.is_empty() => {
                for block in u.message.blocks() {
                    if let ContentBlock::ToolResult(r) = block {
                        if let Some((tool, started, span)) = self.open.remove(&r.tool_use_id) {
                            let ok = !r.is_error.unwrap_or(false);
                            tool_done(
                                &span,
                                tool,
                                started.elapsed(),
                                if ok { "ok" } else { "error" },
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

impl Drop for ToolTimer {
    fn drop(&mut self) {
        for (_, (tool, started, span)) in self.open.drain() {
            tool_done(&span, tool, started.elapsed(), "unfinished");
        }
    }
}

fn tool_done(span: &Span, tool: String, took: Duration, outcome: &'static str) {
    span.record("duration_ms", millis(took));
    span.record("outcome", outcome);
    tracing::debug!(parent: span, duration_ms = millis(took), outcome, "tool use finished");
    histogram!(metric::TOOL_DURATION, "tool" => tool.clone()).record(took.as_secs_f64());
    counter!(metric::TOOL_USES, "tool" => tool, "outcome" => outcome).increment(1);
}

// ---------------------------------------------------------------------------------------
// Supervision

/// A supervisor started a child's process.
pub(crate) fn child_started(
    supervisor: &str,
    child: &str,
    pid: Option<u32>,
    resumed: bool,
    restarts: u32,
    took: Duration,
) {
    tracing::info!(
        supervisor,
        child,
        pid,
        resumed,
        restarts,
        start_ms = millis(took),
        "session started"
    );
}

/// A supervised child crashed (its process died, or it was found unhealthy).
pub(crate) fn child_crashed(supervisor: &str, child: &str, error: &dyn std::fmt::Display) {
    counter!(metric::CHILD_CRASHES, "supervisor" => supervisor.to_owned(), "child" => child.to_owned())
        .increment(1);
    tracing::warn!(supervisor, child, error = %error, "session crashed");
}

/// A supervisor is restarting `child` (once per child restarted).
pub(crate) fn child_restart(supervisor: &str, child: &str, restarts: u32) {
    counter!(metric::RESTARTS, "supervisor" => supervisor.to_owned(), "child" => child.to_owned())
        .increment(1);
    tracing::info!(supervisor, child, restarts, "session restarting");
}

/// A supervisor's restart intensity was exceeded; it shuts down.
pub(crate) fn intensity_exceeded(
    supervisor: &str,
    child: &str,
    max_restarts: u32,
    period: Duration,
) {
    counter!(metric::INTENSITY_EXCEEDED, "supervisor" => supervisor.to_owned()).increment(1);
    tracing::error!(
        supervisor,
        child,
        max_restarts,
        period_ms = millis(period),
        "restart intensity exceeded; shutting the supervisor down"
    );
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------
// Prometheus

/// Errors of the telemetry helpers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The Prometheus exporter could not be built or installed (a recorder is already
    /// installed, or the listen address is taken).
    #[cfg(feature = "prometheus")]
    #[error("could not install the Prometheus exporter: {0}; install one recorder per process")]
    Prometheus(#[from] metrics_exporter_prometheus::BuildError),
}

/// The Prometheus exporter's builder as [`install_prometheus`] configures it (histogram
/// buckets for every `*_seconds` metric and for [`metric::TURN_COST_USD`]), for an
/// application that builds the recorder itself, to wrap or layer it before installing
/// it; call [`describe_metrics`] after installing. Feature `prometheus`.
#[cfg(feature = "prometheus")]
pub fn prometheus_builder() -> Result<metrics_exporter_prometheus::PrometheusBuilder, TelemetryError>
{
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    const SECONDS: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ];
    const USD: &[f64] = &[0.0001, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(Matcher::Full(metric::TURN_COST_USD.into()), USD)?)
}

/// Installs a Prometheus recorder as the process's `metrics` recorder and returns its
/// handle; serve `handle.render()` from your own `/metrics` endpoint. Describes the
/// metrics and, inside a Tokio runtime, spawns a task that keeps histograms compact and
/// samples CLI memory every 5 seconds. Feature `prometheus`.
#[cfg(feature = "prometheus")]
pub fn install_prometheus() -> Result<metrics_exporter_prometheus::PrometheusHandle, TelemetryError>
{
    let handle = prometheus_builder()?.install_recorder()?;
    describe_metrics();
    if tokio::runtime::Handle::try_current().is_ok() {
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
                sample_cli_rss();
            }
        });
    }
    Ok(handle)
}

/// Installs a Prometheus recorder and serves it over HTTP at `addr` (any path answers
/// with the text exposition format). Must be called inside a Tokio runtime; also samples
/// CLI memory every 5 seconds. Feature `prometheus`.
#[cfg(feature = "prometheus")]
pub fn serve_prometheus(addr: std::net::SocketAddr) -> Result<(), TelemetryError> {
    prometheus_builder()?.with_http_listener(addr).install()?;
    describe_metrics();
    spawn_rss_sampler(Duration::from_secs(5));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_this_process_is_readable() {
        let bytes = cli_rss_bytes(std::process::id()).unwrap_or(0);
        assert!(bytes > 0, "VmRSS of this test process");
        assert_eq!(cli_rss_bytes(u32::MAX), None);
    }

    #[test]
    fn a_sample_without_live_clis_is_empty_or_counts_them() {
        let sample = sample_cli_rss();
        assert!(sample.total_bytes >= sample.max_bytes);
    }
}
