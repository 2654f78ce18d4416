//! [`MockServer`]: binds a loopback socket, serves HTTP/1.1 connections (TCP_NODELAY)
//! from one private task, records each request, pops script replies for turns and
//! answers side traffic with defaults. The accept task owns every connection task, so
//! aborting it (shutdown or drop) ends them all.

use std::{
    collections::VecDeque,
    convert::Infallible,
    fmt,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    body::Body,
    http::{header, HeaderValue, Request, Response, StatusCode},
};
use bytes::Bytes;
use futures::StreamExt;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::{
    net::{TcpListener, TcpStream},
    task::{JoinHandle, JoinSet},
};

use crate::{
    classify::RequestKind,
    error::MockError,
    message::{error_json, Ids, Message},
    record::RecordedRequest,
    reply::{Block, Reply, ReplyBody, Usage},
    script::Script,
    side, sse,
};

/// Largest request body the mock reads.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Model named in replies when the request names none.
const DEFAULT_MODEL: &str = "claude-mock";
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A running mock Messages API on `127.0.0.1`. Shuts down on [`MockServer::shutdown`]
/// or when dropped.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

/// State shared by the handle and the connection tasks.
struct Shared {
    state: Mutex<State>,
}

struct State {
    queue: VecDeque<Reply>,
    fallback: Reply,
    requests: Vec<RecordedRequest>,
    ids: Ids,
    /// When set, requests without this key (`x-api-key` or `Authorization: Bearer`) get
    /// a 401 and consume nothing.
    required_key: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated in a way
        // that matters to a mock, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts serving `script` on `127.0.0.1` at a free port. Needs a Tokio runtime.
    pub async fn start(script: Script) -> Result<MockServer, MockError> {
        Self::start_on(script, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts serving `script` on `addr` (port 0 picks a free port).
    pub async fn start_on(script: Script, addr: SocketAddr) -> Result<MockServer, MockError> {
        let bind_err = |source| MockError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let (queue, fallback) = script.into_parts();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue,
                fallback,
                requests: Vec::new(),
                ids: Ids::default(),
                required_key: None,
            }),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(addr = %local, "mock messages api listening");
        Ok(MockServer {
            addr: local,
            shared,
            task: Some(task),
        })
    }

    /// Base URL for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Environment for a `claude` process using this mock: `ANTHROPIC_BASE_URL`,
    /// `ANTHROPIC_API_KEY=sk-test` and `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`
    /// (without it the CLI also tries telemetry hosts on the internet).
    pub fn cli_env(&self) -> Vec<(String, String)> {
        vec![
            ("ANTHROPIC_BASE_URL".into(), self.url()),
            ("ANTHROPIC_API_KEY".into(), "sk-test".into()),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
                "1".into(),
            ),
        ]
    }

    /// From now on, answer only requests that carry `key` (as `x-api-key` or
    /// `Authorization: Bearer`); others get a 401 `authentication_error`, are recorded,
    /// and consume no script reply. Proves that a proxy in front injected the real key.
    pub fn require_api_key(&self, key: impl Into<String>) {
        self.shared.lock().required_key = Some(key.into());
    }

    /// Appends a reply to the script queue.
    pub fn push(&self, reply: Reply) {
        self.shared.lock().queue.push_back(reply);
    }

    /// Scripted replies not yet served.
    pub fn remaining(&self) -> usize {
        self.shared.lock().queue.len()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The main agent-loop turns so far (the requests that consumed script replies).
    pub fn turn_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.is_turn())
            .cloned()
            .collect()
    }

    /// Stops accepting and closes every connection, including streams in flight.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The task only ends by being aborted; its result carries nothing.
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Accepts connections until aborted; dropping the `JoinSet` aborts every connection.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, Arc::clone(&shared)));
                }
                Err(error) => {
                    tracing::warn!(%error, "mock server accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%error, "cannot set TCP_NODELAY on a mock connection");
    }
    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, %error, "mock connection ended with an error");
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let body = error_json(
                "invalid_request_error",
                &format!("mock: cannot read the request body: {error}"),
            );
            return Ok(json_response(StatusCode::BAD_REQUEST, &body, None));
        }
    };
    let key = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let presented = key("x-api-key")
        .or_else(|| key("authorization").and_then(|v: &str| v.strip_prefix("Bearer ")));
    let presented = presented.map(str::to_string);
    let recorded = RecordedRequest::from_http(&parts, &bytes);
    let kind = recorded.kind();
    tracing::debug!(
        method = %recorded.method,
        path = %recorded.path,
        ?kind,
        stream = recorded.is_streaming(),
        "mock request"
    );
    let plan = plan(&shared, recorded, kind, bytes.len(), presented.as_deref());
    Ok(plan.respond().await)
}

/// How to answer one request, decided under the lock, carried out outside it.
enum Plan {
    Message {
        msg: Message,
        stream: bool,
        delay: Duration,
        chunk_delay: Duration,
    },
    Malformed {
        msg: Message,
        delay: Duration,
        chunk_delay: Duration,
    },
    Error {
        status: u16,
        body: Value,
        retry_after: Option<u64>,
        delay: Duration,
    },
    Json {
        status: StatusCode,
        body: Value,
    },
    Empty,
}

/// Records `req` and decides its answer, popping a script reply for a turn.
fn plan(
    shared: &Shared,
    req: RecordedRequest,
    kind: RequestKind,
    body_len: usize,
    key: Option<&str>,
) -> Plan {
    let mut guard = shared.lock();
    let State {
        queue,
        fallback,
        requests,
        ids,
        required_key,
    } = &mut *guard;
    let model = req.model().unwrap_or(DEFAULT_MODEL).to_string();
    let authorized = required_key
        .as_deref()
        .is_none_or(|required| key == Some(required));
    let plan = match kind {
        _ if !authorized => Plan::Error {
            status: 401,
            body: error_json("authentication_error", "invalid x-api-key"),
            retry_after: None,
            delay: Duration::ZERO,
        },
        RequestKind::Turn => {
            let reply = queue.pop_front().unwrap_or_else(|| fallback.clone());
            turn_plan(ids, &model, &req, reply)
        }
        RequestKind::CountTokens => Plan::Json {
            status: StatusCode::OK,
            body: side::count_tokens(body_len),
        },
        RequestKind::Other => other_plan(&req),
        _ => {
            let side = side::side_message(kind, &req);
            let mut msg = Message::new(ids, &model, vec![Block::Text(side.text)], side.usage);
            if let Some(stop) = side.stop_reason {
                msg.stop_reason = stop;
            }
            Plan::Message {
                msg,
                stream: req.is_streaming(),
                delay: Duration::ZERO,
                chunk_delay: Duration::ZERO,
            }
        }
    };
    requests.push(req);
    plan
}

fn turn_plan(ids: &mut Ids, model: &str, req: &RecordedRequest, reply: Reply) -> Plan {
    let usage = reply.usage.unwrap_or(Usage::DEFAULT);
    let delay = reply.delay_duration();
    let chunk_delay = reply.chunk_delay_duration();
    let message = |ids: &mut Ids, blocks| Plan::Message {
        msg: Message::new(ids, model, blocks, usage),
        stream: req.is_streaming(),
        delay,
        chunk_delay,
    };
    match reply.body {
        ReplyBody::Message { blocks } => message(ids, blocks),
        ReplyBody::Echo { mut before } => {
            let text = req.last_user_text().unwrap_or_default();
            before.push(Block::Text(format!("echo: {text}")));
            message(ids, before)
        }
        ReplyBody::Error {
            status,
            error_type,
            message,
            retry_after_secs,
        } => Plan::Error {
            status,
            body: error_json(&error_type, &message),
            retry_after: retry_after_secs,
            delay,
        },
        ReplyBody::MalformedSse => Plan::Malformed {
            msg: Message::new(ids, model, Vec::new(), usage),
            delay,
            chunk_delay,
        },
    }
}

fn other_plan(req: &RecordedRequest) -> Plan {
    if req.path == "/api/hello" {
        return Plan::Empty;
    }
    if req.method == "POST" && req.path.trim_end_matches('/') == "/v1/messages" {
        return Plan::Json {
            status: StatusCode::BAD_REQUEST,
            body: error_json(
                "invalid_request_error",
                "mock: body must be a JSON object with a messages array",
            ),
        };
    }
    Plan::Json {
        status: StatusCode::NOT_FOUND,
        body: error_json(
            "not_found_error",
            &format!("mock: no endpoint {} {}", req.method, req.path),
        ),
    }
}

impl Plan {
    async fn respond(self) -> Response<Body> {
        match self {
            Plan::Message {
                msg,
                stream,
                delay,
                chunk_delay,
            } => {
                wait(delay).await;
                if stream {
                    sse_response(sse::message_events(&msg), chunk_delay)
                } else {
                    json_response(StatusCode::OK, &msg.to_json(), None)
                }
            }
            Plan::Malformed {
                msg,
                delay,
                chunk_delay,
            } => {
                wait(delay).await;
                sse_response(sse::malformed_events(&msg), chunk_delay)
            }
            Plan::Error {
                status,
                body,
                retry_after,
                delay,
            } => {
                wait(delay).await;
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                json_response(status, &body, retry_after)
            }
            Plan::Json { status, body } => json_response(status, &body, None),
            Plan::Empty => Response::new(Body::empty()),
        }
    }
}

async fn wait(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn json_response(status: StatusCode, body: &Value, retry_after: Option<u64>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// An event-stream response; all frames in one write, or paced `gap` apart.
fn sse_response(frames: Vec<Bytes>, gap: Duration) -> Response<Body> {
    let body = if gap.is_zero() {
        Body::from(frames.concat())
    } else {
        let paced = futures::stream::iter(frames.into_iter().enumerate()).then(
            move |(i, frame)| async move {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                Ok::<_, Infallible>(frame)
            },
        );
        Body::from_stream(paced)
    };
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
