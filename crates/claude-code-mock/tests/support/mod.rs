//! Test-side HTTP client for the mock: one request per connection over hyper's http1
//! client, whole bodies or frame by frame with arrival times, an SSE parser, and
//! request bodies shaped like the CLI's.

#![allow(dead_code)] // each test file uses a different part of this module

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// A response read to the end.
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }

    /// `(event, data)` pairs of an event-stream body.
    pub fn events(&self) -> Vec<(String, String)> {
        parse_sse(&self.text())
    }

    /// `(event, parsed data)` pairs; panics on invalid JSON.
    pub fn json_events(&self) -> Vec<(String, Value)> {
        self.events()
            .into_iter()
            .map(|(e, d)| (e, serde_json::from_str(&d).expect("event data is json")))
            .collect()
    }
}

/// Sends one request on a fresh connection and returns the response head and body.
pub async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Response<Incoming> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to mock");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(bytes)).expect("request");
    sender.send_request(req).await.expect("send request")
}

/// Sends a request and reads the whole response.
pub async fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Reply {
    read(send(port, method, path, &[], body).await).await
}

/// `POST` a JSON body and read the whole response.
pub async fn post(port: u16, path: &str, body: &Value) -> Reply {
    request(port, "POST", path, Some(body)).await
}

pub async fn read(resp: Response<Incoming>) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("read body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// Reads body frames as they arrive, with their arrival time; stops at the end or at a
/// body error (returned as `Err` text).
pub async fn frames(resp: Response<Incoming>) -> (Vec<(Instant, Bytes)>, Result<(), String>) {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    loop {
        match body.frame().await {
            None => return (out, Ok(())),
            Some(Err(e)) => return (out, Err(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    out.push((Instant::now(), data));
                }
            }
        }
    }
}

/// `(event, data)` pairs of an event-stream text.
pub fn parse_sse(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| {
            let mut event = String::new();
            let mut data = String::new();
            for line in chunk.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            (event, data)
        })
        .collect()
}

/// A main agent-loop request body like the CLI's.
pub fn turn_body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": "claude-test-model",
        "max_tokens": 32000,
        "stream": stream,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: test;"},
                   {"type": "text", "text": "You are under test."}],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}],
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\ninjected\n</system-reminder>\n"},
            {"type": "text", "text": prompt}
        ]}]
    })
}

/// The text of all `text_delta`s in a parsed event list.
pub fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| d.pointer("/delta/text").and_then(Value::as_str))
        .collect()
}
