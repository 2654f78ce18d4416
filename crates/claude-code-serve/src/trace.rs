//! Request spans and request ids.
//!
//! [`request`] wraps every request in an `http.request` span with `request_id`, `method`
//! and `route` (the matched route template, never the raw path), then `tenant`,
//! `session` or `pool` once known (see [`record_tenant`]), and `status` and `latency_ms`
//! when the response head is ready, when it logs one `request` event. The id is the client's
//! `x-request-id` when that is 1-64 characters of `A-Z a-z 0-9 - _ . :`, else a new
//! random one; either way it is returned in the `x-request-id` response header.
//!
//! Nothing here reads headers other than `x-request-id`, bodies or query strings: the
//! `Authorization` header and prompts never reach a span or a log line.

use std::{fmt::Write, time::Instant};

use axum::{
    extract::{RawPathParams, Request},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
    RequestExt,
};
use tracing::{field::Empty, Instrument, Span};

use crate::{
    metrics::{method_label, route_label},
    state::is_valid_name,
};

/// The request id header, read and returned.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes polled by probes and scrapers: their requests log at debug level.
const QUIET_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Middleware: one span per request, a request id, and a log line when the response
/// head is ready.
pub(crate) async fn request(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_request_id(v))
        .map_or_else(new_request_id, str::to_owned);
    let route = route_label(&request);
    let span = tracing::info_span!(
        "http.request",
        request_id = id.as_str(),
        method = method_label(request.method()),
        route = &*route,
        tenant = Empty,
        session = Empty,
        pool = Empty,
        status = Empty,
        latency_ms = Empty,
    );
    // `{name}` in a route is the caller's session name, `{pool}` a pool's (no parameters:
    // unmatched). Only valid names: the text log format prints values as they are.
    if let Ok(params) = request.extract_parts::<RawPathParams>().await {
        for (key, value) in params.iter().filter(|(_, v)| is_valid_name(v)) {
            match key {
                "name" => span.record("session", value),
                "pool" => span.record("pool", value),
                _ => &span,
            };
        }
    }
    request.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    {
        let _in = span.enter();
        // Status and latency are the span's fields, printed with it.
        if status >= 500 {
            tracing::warn!("request");
        } else if QUIET_ROUTES.contains(&&*route) {
            tracing::debug!("request");
        } else {
            tracing::info!("request");
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// The request's id, for the layers and handlers inside [`request`].
#[derive(Debug, Clone)]
struct RequestId(String);

/// The id [`request`] gave this request (`-` outside it).
pub(crate) fn request_id(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| "-".to_string(), |id| id.0.clone())
}

/// Records the caller's tenant on the current request's span.
pub(crate) fn record_tenant(tenant: &str) {
    Span::current().record("tenant", tenant);
}

/// Records a session name on the current request's span (for routes whose name is in
/// the body rather than the path).
pub(crate) fn record_session(name: &str) {
    Span::current().record("session", name);
}

/// 1-64 characters of `A-Z a-z 0-9 - _ . :`.
fn is_valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// 32 random hex digits; a counter-based id when the system's random source fails.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&u64::from(std::process::id()).to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_validated_and_generated_unique() {
        assert!(is_valid_request_id("abc-123_x.y:z"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("has space"));
        assert!(!is_valid_request_id("line\nbreak"));
        assert!(!is_valid_request_id(&"x".repeat(65)));
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 32);
        assert!(is_valid_request_id(&a));
        assert_ne!(a, b);
    }
}
