//! `GET /metrics`: the SDK's metrics (see `claude_code::telemetry::metric`) and the
//! host's HTTP metrics in the Prometheus text exposition format.
//!
//! In a cluster, the cluster's metrics too (see [`cluster`]).
//!
//! HTTP metrics, recorded by [`track`] around every request:
//! - `claude_code_http_requests_total{method,route,status}` (counter);
//! - `claude_code_http_request_duration_seconds{method,route}` (histogram; for a streamed
//!   turn, the time to the response head, not to the stream's end);
//! - `claude_code_http_requests_in_flight` (gauge).
//!
//! `route` is the matched route template (`/v1/sessions/{name}`), `unmatched` for a path
//! no route matches, so that neither session names nor arbitrary paths become label
//! values. The SDK's `child` label (a supervised child's name, here `<tenant>/<session>`)
//! is dropped before anything is stored: `/metrics` is readable with any tenant's read
//! token, and one tenant must not learn another's session names from it.
//!
//! A `metrics` recorder can be installed once per process. The first [`Host`] started in
//! a process installs the host's recorder ([`install`]) and every later one shares it, so
//! several hosts in one process (tests, embedders) serve the same process-wide figures.
//! When the application installed another recorder first, the host keeps recording into
//! that one and `/metrics` answers 503 `metrics_unavailable`.
//!
//! [`Host`]: crate::Host

pub(crate) mod cluster;

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{
    counter, gauge, histogram, Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use crate::{
    auth::{Caller, Scope},
    body::ErrorBody,
    error::ApiError,
    state::AppState,
};

/// Counter: HTTP requests answered, labels `method`, `route`, `status`.
pub const HTTP_REQUESTS: &str = "claude_code_http_requests_total";
/// Histogram: time to the response head in seconds, labels `method`, `route`.
pub const HTTP_DURATION: &str = "claude_code_http_request_duration_seconds";
/// Gauge: HTTP requests being handled.
pub const HTTP_IN_FLIGHT: &str = "claude_code_http_requests_in_flight";

/// The `route` label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// Labels never stored: they carry tenants' session names.
const DROPPED_LABELS: [&str; 1] = ["child"];

/// The Prometheus exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's recorder handle, or why there is none.
static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the host's Prometheus recorder as the process's `metrics` recorder, once per
/// process; later calls return the same handle. `None` (logged once) when another
/// recorder was installed first or the exporter could not be built.
pub(crate) fn install() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let installed = build().and_then(|recorder| {
                let handle = recorder.handle();
                metrics::set_global_recorder(WithoutLabels(recorder))
                    .map(|()| handle)
                    .map_err(|_| {
                        "another metrics recorder was installed in this process first".to_string()
                    })
            });
            match &installed {
                Ok(_) => {
                    claude_code::telemetry::describe_metrics();
                    describe_http_metrics();
                }
                Err(e) => tracing::warn!(error = %e, "GET /metrics is unavailable"),
            }
            installed
        })
        .as_ref()
        .ok()
        .cloned()
}

fn build() -> Result<PrometheusRecorder, String> {
    claude_code::telemetry::prometheus_builder()
        .map(|b| b.build_recorder())
        .map_err(|e| e.to_string())
}

fn describe_http_metrics() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    metrics::describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to the HTTP response head by method and route"
    );
    metrics::describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being handled");
}

/// Every metric of this process in the Prometheus text format (read scope).
#[utoipa::path(get, path = "/metrics", tag = "health",
    description = "Prometheus text exposition (version 0.0.4) of the process's metrics: the \
        SDK's (`claude_code_turns_total`, `claude_code_turn_duration_seconds`, \
        `claude_code_cost_usd`, ...) and the HTTP layer's \
        (`claude_code_http_requests_total{method,route,status}`, \
        `claude_code_http_request_duration_seconds{method,route}`, \
        `claude_code_http_requests_in_flight`), labelled by route template; in a \
        cluster also `claude_cluster_*{node,...}` (members, sessions owned, routed turns \
        and calls, failovers, lost leases, failed heartbeats, pool jobs); no label carries a \
        session name or a prompt.",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 503, description = "Another metrics recorder was installed in this process first", body = ErrorBody),
    ))]
pub(crate) async fn render(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let Some(Ok(handle)) = RECORDER.get() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "this process has another metrics recorder installed, so the host cannot \
             render its metrics; read them from that recorder",
        ));
    };
    // A fresh memory sample: the periodic one runs only on the first host's runtime.
    claude_code::telemetry::sample_cli_rss();
    if let Some(c) = state.cluster() {
        cluster::set_connected(c.node(), c.link().connected());
        // Bounded: a NATS server that does not answer must not stall the scrape.
        match tokio::time::timeout(Duration::from_secs(2), c.members()).await {
            Ok(Ok(members)) => {
                cluster::set_members(c.node(), members.len(), c.leases().held().len())
            }
            _ => tracing::debug!("cannot read the cluster's members for /metrics"),
        }
    }
    let body = handle.render();
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response())
}

/// Middleware: counts and times every request by method, route template and status.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = route_label(&request);
    let _in_flight = InFlight::enter();
    let started = Instant::now();
    let response = next.run(request).await;
    histogram!(HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    counter!(HTTP_REQUESTS, "method" => method, "route" => route,
        "status" => status_label(response.status()))
    .increment(1);
    response
}

/// The matched route template, or `unmatched`.
pub(crate) fn route_label(request: &Request) -> SharedString {
    match request.extensions().get::<MatchedPath>() {
        Some(path) => SharedString::from(path.as_str().to_owned()),
        None => SharedString::const_str(UNMATCHED),
    }
}

/// A standard method's name, else `other` (extension methods are unbounded).
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The status code's digits (at most the 500 codes of 100-599).
fn status_label(status: StatusCode) -> SharedString {
    SharedString::from(status.as_u16().to_string())
}

/// Raises the in-flight gauge; lowers it when dropped, also when the client went away
/// and the request's future was dropped.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        gauge!(HTTP_IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(HTTP_IN_FLIGHT).decrement(1.0);
    }
}

/// The Prometheus recorder, with the labels in [`DROPPED_LABELS`] removed from every key.
#[derive(Debug)]
struct WithoutLabels(PrometheusRecorder);

impl WithoutLabels {
    fn key(key: &Key) -> Option<Key> {
        if !key.labels().any(|l| DROPPED_LABELS.contains(&l.key())) {
            return None;
        }
        let labels: Vec<_> = key
            .labels()
            .filter(|l| !DROPPED_LABELS.contains(&l.key()))
            .cloned()
            .collect();
        Some(Key::from_parts(key.name_shared(), labels))
    }
}

impl Recorder for WithoutLabels {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.0.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match Self::key(key) {
            Some(k) => self.0.register_counter(&k, metadata),
            None => self.0.register_counter(key, metadata),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match Self::key(key) {
            Some(k) => self.0.register_gauge(&k, metadata),
            None => self.0.register_gauge(key, metadata),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match Self::key(key) {
            Some(k) => self.0.register_histogram(&k, metadata),
            None => self.0.register_histogram(key, metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_label_is_dropped_and_others_kept() {
        let key = Key::from_parts(
            "claude_code_restarts_total",
            vec![
                metrics::Label::new("supervisor", "serve"),
                metrics::Label::new("child", "tenant/secret-name"),
            ],
        );
        let stripped = WithoutLabels::key(&key).expect("rewritten");
        let labels: Vec<_> = stripped.labels().map(|l| l.key().to_owned()).collect();
        assert_eq!(labels, ["supervisor"]);
        assert!(WithoutLabels::key(&Key::from_name("plain")).is_none());
    }

    #[test]
    fn methods_are_bounded_labels() {
        assert_eq!(&*status_label(StatusCode::NOT_FOUND), "404");
        assert_eq!(method_label(&Method::POST), "POST");
        let custom = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&custom), "other");
    }
}
