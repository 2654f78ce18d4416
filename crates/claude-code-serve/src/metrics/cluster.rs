//! The cluster's metrics, labelled by `node` (this host's node name: several hosts in one
//! process share the process's recorder, and a node name is no tenant's secret).
//!
//! Registered with zero values when a host joins its cluster ([`register`]), so a
//! standalone host exposes none of them:
//! - `claude_cluster_members{node}` (gauge): live members as this host saw them at the
//!   last `GET /metrics` (this host included);
//! - `claude_cluster_sessions_owned{node}` (gauge): session leases this host holds, at the
//!   last `GET /metrics`;
//! - `claude_cluster_routed_turns_total{node,direction,outcome}` (counter): turns routed
//!   through the cluster. `direction="out"`: sent by this host to a session's owner,
//!   `outcome` = `ok` (the response head was a 2xx), `error` (the owner answered an error,
//!   or a JSON turn ended with one such as 502 `owner_lost`), `owner_unavailable` or
//!   `cluster_unavailable`. `direction="in"`: run by this host for another member,
//!   `outcome` = `accepted` or `refused`;
//! - `claude_cluster_routed_calls_total{node,op,direction,outcome}` (counter): the other
//!   session calls routed to an owner (`op` = `get`, `delete`, `interrupt`,
//!   `transcript`), `outcome` = `ok` (2xx), `error` (the owner answered an error), or
//!   `owner_unavailable` (out only: no answer);
//! - `claude_cluster_routed_call_seconds{node,op}` (histogram): a routed call's NATS
//!   request-reply round trip, the owner's work included, as the requester measured it;
//! - `claude_cluster_failovers_total{node}` (counter): sessions this host took over from a
//!   dead member;
//! - `claude_cluster_lease_lost_total{node}` (counter): leases this host found taken over
//!   by another member when it renewed them;
//! - `claude_cluster_heartbeat_failures_total{node}` (counter): heartbeats this host could
//!   not put;
//! - `claude_cluster_pool_jobs_total{node,pool,outcome}` (counter): cluster pool jobs
//!   (registered per configured pool when the host joins). As the requester: `published`
//!   (a job put into the work queue), `cancelled` (given up before any host started it:
//!   queue timeout, or the client left), `failed` (its client got no answer from an
//!   executor: a streamed job whose host died after its first message, `owner_lost`, or
//!   NATS lost while waiting). As the executor: `run` (a job's turn started here),
//!   `redelivered` (a delivery after the first, whatever became of it),
//!   `answered_from_record` (a redelivered JSON job whose stored reply was sent again, not
//!   run), `dropped` (a delivered job not run: cancelled by its requester, or a streamed
//!   job that already sent messages from a host that died);
//! - `claude_cluster_pool_jobs_in_flight{node,pool}` (gauge): jobs this host runs now;
//! - `claude_cluster_pool_job_seconds{node,pool,mode}` (histogram): as the requester, from
//!   publishing a job to its answer (`mode="json"`) or to the end of its stream
//!   (`mode="sse"`);
//! - `claude_cluster_connected{node}` (gauge): 1 while this host's connection to the NATS
//!   server is up, 0 while it is down (set when it changes, within 50 ms, and at each
//!   `GET /metrics`).

use metrics::{counter, gauge, histogram, SharedString, Unit};

/// Gauge: live cluster members.
pub const MEMBERS: &str = "claude_cluster_members";
/// Gauge: session leases this host holds.
pub const SESSIONS_OWNED: &str = "claude_cluster_sessions_owned";
/// Counter: routed turns, labels `node`, `direction`, `outcome`.
pub const ROUTED_TURNS: &str = "claude_cluster_routed_turns_total";
/// Counter: routed session calls, labels `node`, `op`, `direction`, `outcome`.
pub const ROUTED_CALLS: &str = "claude_cluster_routed_calls_total";
/// Histogram: a routed call's round trip in seconds, labels `node`, `op`.
pub const ROUTED_CALL_SECONDS: &str = "claude_cluster_routed_call_seconds";
/// Counter: sessions taken over from a dead member.
pub const FAILOVERS: &str = "claude_cluster_failovers_total";
/// Counter: leases found lost at renewal.
pub const LEASE_LOST: &str = "claude_cluster_lease_lost_total";
/// Counter: failed heartbeats.
pub const HEARTBEAT_FAILURES: &str = "claude_cluster_heartbeat_failures_total";
/// Gauge: 1 while the connection to NATS is up, else 0.
pub const CONNECTED: &str = "claude_cluster_connected";

/// Counter: cluster pool jobs, labels `node`, `pool`, `outcome`.
pub const POOL_JOBS: &str = "claude_cluster_pool_jobs_total";
/// Gauge: cluster pool jobs this host runs, labels `node`, `pool`.
pub const POOL_JOBS_IN_FLIGHT: &str = "claude_cluster_pool_jobs_in_flight";
/// Histogram: a cluster pool job's time from publish to its answer or its stream's end,
/// labels `node`, `pool`, `mode`.
pub const POOL_JOB_SECONDS: &str = "claude_cluster_pool_job_seconds";

/// The `outcome` values of [`POOL_JOBS`].
pub(crate) const POOL_OUTCOMES: [&str; 7] = [
    "published",
    "run",
    "redelivered",
    "answered_from_record",
    "cancelled",
    "dropped",
    "failed",
];

/// The session calls that are routed, as `op` label values.
pub(crate) const OPS: [&str; 4] = ["get", "delete", "interrupt", "transcript"];

fn node_label(node: &str) -> SharedString {
    SharedString::from(node.to_owned())
}

/// Describes the cluster metrics and registers each series of `node` at zero, so that
/// a clustered host exposes them before anything happened.
pub(crate) fn register(node: &str) {
    metrics::describe_gauge!(MEMBERS, "Live cluster members, as this host last saw them");
    metrics::describe_gauge!(SESSIONS_OWNED, "Session leases this host holds");
    metrics::describe_counter!(
        ROUTED_TURNS,
        "Turns routed through the cluster by direction (out: to an owner; in: for a requester) and outcome"
    );
    metrics::describe_counter!(
        ROUTED_CALLS,
        "Session calls (get, delete, interrupt, transcript) routed through the cluster"
    );
    metrics::describe_histogram!(
        ROUTED_CALL_SECONDS,
        Unit::Seconds,
        "Round trip of a routed session call over NATS, the owner's work included"
    );
    metrics::describe_counter!(FAILOVERS, "Sessions taken over from a dead member");
    metrics::describe_counter!(
        LEASE_LOST,
        "Session leases found taken over by another member at renewal"
    );
    metrics::describe_counter!(HEARTBEAT_FAILURES, "Cluster heartbeats that failed");
    metrics::describe_gauge!(
        CONNECTED,
        "1 while this host's connection to the cluster's NATS server is up, else 0"
    );
    let n = node_label(node);
    gauge!(MEMBERS, "node" => n.clone()).set(0.0);
    gauge!(SESSIONS_OWNED, "node" => n.clone()).set(0.0);
    for outcome in ["ok", "error", "owner_unavailable", "cluster_unavailable"] {
        counter!(ROUTED_TURNS, "node" => n.clone(), "direction" => "out", "outcome" => outcome)
            .increment(0);
    }
    for outcome in ["accepted", "refused"] {
        counter!(ROUTED_TURNS, "node" => n.clone(), "direction" => "in", "outcome" => outcome)
            .increment(0);
    }
    for op in OPS {
        for direction in ["out", "in"] {
            for outcome in ["ok", "error"] {
                counter!(ROUTED_CALLS, "node" => n.clone(), "op" => op,
                    "direction" => direction, "outcome" => outcome)
                .increment(0);
            }
        }
    }
    counter!(FAILOVERS, "node" => n.clone()).increment(0);
    counter!(LEASE_LOST, "node" => n.clone()).increment(0);
    counter!(HEARTBEAT_FAILURES, "node" => n).increment(0);
}

/// Sets the connection gauge (when the connection to NATS comes or goes).
pub(crate) fn set_connected(node: &str, connected: bool) {
    gauge!(CONNECTED, "node" => node_label(node)).set(if connected { 1.0 } else { 0.0 });
}

/// Sets the membership gauges (at `GET /metrics`).
pub(crate) fn set_members(node: &str, members: usize, sessions_owned: usize) {
    gauge!(MEMBERS, "node" => node_label(node)).set(members as f64);
    gauge!(SESSIONS_OWNED, "node" => node_label(node)).set(sessions_owned as f64);
}

/// Counts a routed turn.
pub(crate) fn routed_turn(node: &str, direction: &'static str, outcome: &'static str) {
    counter!(ROUTED_TURNS, "node" => node_label(node), "direction" => direction,
        "outcome" => outcome)
    .increment(1);
}

/// Counts a routed session call.
pub(crate) fn routed_call(
    node: &str,
    op: &'static str,
    direction: &'static str,
    outcome: &'static str,
) {
    counter!(ROUTED_CALLS, "node" => node_label(node), "op" => op,
        "direction" => direction, "outcome" => outcome)
    .increment(1);
}

/// Records a routed call's round trip.
pub(crate) fn routed_call_seconds(node: &str, op: &'static str, seconds: f64) {
    histogram!(ROUTED_CALL_SECONDS, "node" => node_label(node), "op" => op).record(seconds);
}

/// Counts a session taken over from a dead member.
pub(crate) fn failover(node: &str) {
    counter!(FAILOVERS, "node" => node_label(node)).increment(1);
}

/// Counts a lease found lost at renewal.
pub(crate) fn lease_lost(node: &str) {
    counter!(LEASE_LOST, "node" => node_label(node)).increment(1);
}

/// Counts a failed heartbeat.
pub(crate) fn heartbeat_failure(node: &str) {
    counter!(HEARTBEAT_FAILURES, "node" => node_label(node)).increment(1);
}

/// Describes the cluster pool metrics and registers each series of `node` and `pools`
/// at zero (the host joined its cluster).
pub(crate) fn register_pools<'a>(node: &str, pools: impl IntoIterator<Item = &'a str>) {
    metrics::describe_counter!(
        POOL_JOBS,
        "Cluster pool jobs by outcome (requester: published, cancelled, failed; executor: run, redelivered, answered_from_record, dropped)"
    );
    metrics::describe_gauge!(POOL_JOBS_IN_FLIGHT, "Cluster pool jobs this host runs");
    metrics::describe_histogram!(
        POOL_JOB_SECONDS,
        Unit::Seconds,
        "A cluster pool job from publish to its answer (json) or its stream's end (sse), at the requester"
    );
    let n = node_label(node);
    for pool in pools {
        let p = SharedString::from(pool.to_owned());
        for outcome in POOL_OUTCOMES {
            counter!(POOL_JOBS, "node" => n.clone(), "pool" => p.clone(), "outcome" => outcome)
                .increment(0);
        }
        gauge!(POOL_JOBS_IN_FLIGHT, "node" => n.clone(), "pool" => p).set(0.0);
    }
}

/// Counts a cluster pool job's `outcome` (one of [`POOL_OUTCOMES`]).
pub(crate) fn pool_job(node: &str, pool: &str, outcome: &'static str) {
    counter!(POOL_JOBS, "node" => node_label(node), "pool" => pool.to_owned(),
        "outcome" => outcome)
    .increment(1);
}

/// Records a job's time at its requester, `mode` `json` or `sse`.
pub(crate) fn pool_job_seconds(node: &str, pool: &str, mode: &'static str, seconds: f64) {
    histogram!(POOL_JOB_SECONDS, "node" => node_label(node), "pool" => pool.to_owned(),
        "mode" => mode)
    .record(seconds);
}

/// One job this host runs, counted in [`POOL_JOBS_IN_FLIGHT`] until dropped.
pub(crate) struct PoolJobInFlight {
    node: String,
    pool: String,
}

impl PoolJobInFlight {
    /// Counts a job of `pool` running here from now.
    pub(crate) fn new(node: &str, pool: &str) -> Self {
        gauge!(POOL_JOBS_IN_FLIGHT, "node" => node_label(node), "pool" => pool.to_owned())
            .increment(1.0);
        PoolJobInFlight {
            node: node.to_owned(),
            pool: pool.to_owned(),
        }
    }
}

impl Drop for PoolJobInFlight {
    fn drop(&mut self) {
        gauge!(POOL_JOBS_IN_FLIGHT, "node" => node_label(&self.node),
            "pool" => self.pool.clone())
        .decrement(1.0);
    }
}
