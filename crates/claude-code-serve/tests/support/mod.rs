//! HTTP helpers shared by the host's test binaries: a request with its status and JSON
//! answer, a turn (JSON or SSE), the events of an SSE body, a Prometheus sample.

#![allow(dead_code)]

use claude_code_serve::Host;
use serde_json::{json, Value};

/// `method url` with an optional JSON body: the status and the answer (`Null` when the
/// answer is not JSON).
pub async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    call_as(method, url, None, body).await
}

/// [`call`] with an optional bearer token.
pub async fn call_as(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET path` on `host`.
pub async fn get(host: &Host, path: &str) -> (u16, Value) {
    call(reqwest::Method::GET, format!("{}{path}", host.url()), None).await
}

/// A JSON turn of the session `name` through `host`.
pub async fn ask(host: &Host, name: &str, prompt: &str) -> (u16, Value) {
    let url = format!("{}/v1/sessions/{name}/messages", host.url());
    call(
        reqwest::Method::POST,
        url,
        Some(json!({ "prompt": prompt })),
    )
    .await
}

/// An SSE turn of the session `name` through the host at `base`: its status and events.
pub async fn ask_sse(base: &str, name: &str, prompt: &str) -> (u16, Vec<(String, Value)>) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/sessions/{name}/messages"))
        .header("accept", "text/event-stream")
        .json(&json!({ "prompt": prompt }))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, sse_events(&text))
}

/// The `(event, data)` pairs of an SSE body; a JSON error body (refused before the stream
/// began) is one `error` event.
pub fn sse_events(text: &str) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let (mut event, mut data) = (None, String::new());
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if let Some(event) = event {
            events.push((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    if events.is_empty() {
        if let Ok(body) = serde_json::from_str(text) {
            events.push(("error".to_string(), body));
        }
    }
    events
}

/// The value of the sample whose line starts with `series` (name and labels, in the
/// order the host records them).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// The body of the host's `GET /metrics` (a 200).
pub async fn metrics(host: &Host) -> String {
    let r = reqwest::get(format!("{}/metrics", host.url()))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.expect("body")
}

/// One series' value in the host's `/metrics`.
pub async fn metric(host: &Host, series: &str) -> Option<f64> {
    sample(&metrics(host).await, series)
}
