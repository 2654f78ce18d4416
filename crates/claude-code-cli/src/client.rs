//! The HTTP client of a running host (`claude-code serve`), used by `sessions`, `send` and
//! `query` with `--server URL`: JSON requests, turns read as Server-Sent Events, and the
//! host's `{"code", "message"}` errors as [`ClientError::Api`].
//!
//! Plain `http://` only for now: this build has no TLS, so reach a host over a network
//! through a TLS-terminating proxy or an SSH tunnel to its loopback address.

use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::{
    header::{HeaderValue, ACCEPT, AUTHORIZATION},
    Method, RequestBuilder, Response, StatusCode, Url,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// What talking to a host can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The command talks to a host and none was given.
    #[error("`{command}` talks to a running host: give --server URL (or set CLAUDE_CODE_SERVER), e.g. --server http://127.0.0.1:8787")]
    NoServer {
        /// The subcommand.
        command: &'static str,
    },

    /// `--server` is not a usable URL.
    #[error("--server {url:?} is not usable: {reason}")]
    InvalidServer {
        /// What was given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A session name the host cannot have.
    #[error("{name:?} is not a session name: names are 1-64 characters of A-Z, a-z, 0-9, _ or -")]
    InvalidName {
        /// The name given.
        name: String,
    },

    /// The token cannot be sent in a header.
    #[error("the token (--token or CLAUDE_CODE_TOKEN) holds characters that cannot be sent in an HTTP header; copy it again from `claude-code token create`")]
    InvalidToken,

    /// The host could not be reached.
    #[error("cannot reach the host at {url}: {source}; is `claude-code serve` running there?")]
    Connect {
        /// The URL asked.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// The host answered with an error status and its `{"code", "message"}` body.
    #[error("the host answered {status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The host's stable error code (`not_found`, `unauthorized`, ...).
        code: String,
        /// The host's message.
        message: String,
    },

    /// A turn's stream carried an `error` event.
    #[error("the turn failed on the host ({code}): {message}")]
    TurnError {
        /// The host's error code.
        code: String,
        /// The host's message.
        message: String,
    },

    /// The request or the response body failed midway.
    #[error("{what} failed: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },

    /// The host's answer is not what this client understands (another program on that
    /// port, or a host of another version).
    #[error("unexpected answer to {what}: {detail}; is that address a `claude-code serve` host of this version?")]
    BadResponse {
        /// The request.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

/// A host's session as `GET /v1/sessions` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct RemoteSession {
    /// The session's name.
    pub name: String,
    /// `live`, `hibernated`, `restarting`, ...
    pub status: String,
    /// Turns so far.
    #[serde(default)]
    pub turns: u64,
    /// USD spent so far.
    #[serde(default)]
    pub cost_usd: f64,
}

/// One Server-Sent Event: its name (`message` when none was given) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field.
    pub event: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// A client of one host.
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    token: Option<HeaderValue>,
    http: reqwest::Client,
    timeout: Option<Duration>,
}

impl Client {
    /// A client of the host at `server` (`http://host:port`, optionally with a path
    /// prefix), sending `token` as a bearer token when given.
    pub fn new(server: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidServer {
            url: server.to_string(),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(server).map_err(|e| invalid(&e.to_string()))?;
        match base.scheme() {
            "http" => {}
            "https" => {
                return Err(invalid(
                    "this build speaks plain http only (no TLS yet); use http:// to a \
                     loopback host, or tunnel to one",
                ))
            }
            _ => return Err(invalid("give an http:// URL such as http://127.0.0.1:8787")),
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(invalid("give an http:// URL such as http://127.0.0.1:8787"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "give the host's address without a query or fragment",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                let mut value = HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| ClientError::InvalidToken)?;
                value.set_sensitive(true);
                Ok::<_, ClientError>(value)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| ClientError::Http {
                what: "setting up the HTTP client".to_string(),
                source,
            })?;
        Ok(Client {
            base,
            token,
            http,
            timeout: None,
        })
    }

    /// Gives up on each request after `timeout` (a streamed turn: on the whole turn).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Client {
        self.timeout = timeout;
        self
    }

    /// The host's base URL.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::InvalidServer {
                url: self.base().to_string(),
                reason: e.to_string(),
            })
    }

    fn request(&self, method: Method, path: &str) -> Result<(RequestBuilder, String), ClientError> {
        let url = self.url(path)?;
        let what = format!("{method} {url}");
        let mut req = self.http.request(method, url);
        if let Some(token) = &self.token {
            req = req.header(AUTHORIZATION, token.clone());
        }
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        Ok((req, what))
    }

    /// Sends a request; an error status becomes [`ClientError::Api`].
    async fn send(&self, req: RequestBuilder, what: &str) -> Result<Response, ClientError> {
        let response = req.send().await.map_err(|source| {
            if source.is_connect() {
                ClientError::Connect {
                    url: self.base().to_string(),
                    source,
                }
            } else {
                ClientError::Http {
                    what: what.to_string(),
                    source,
                }
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(response, what).await)
    }

    async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let (req, what) = self.request(Method::GET, path)?;
        let response = self.send(req, &what).await?;
        response.json().await.map_err(|e| ClientError::BadResponse {
            what: what.clone(),
            detail: format!("the body is not JSON: {e}"),
        })
    }

    /// `GET /v1/sessions`: the caller's sessions.
    pub async fn sessions(&self) -> Result<Vec<RemoteSession>, ClientError> {
        let body = self.get_json("/v1/sessions").await?;
        let list = body.get("sessions").cloned().unwrap_or(Value::Null);
        serde_json::from_value(list).map_err(|e| ClientError::BadResponse {
            what: "GET /v1/sessions".to_string(),
            detail: e.to_string(),
        })
    }

    /// `GET /v1/sessions/{name}/transcript`: `{"session_id", "messages": [{role, text}]}`.
    pub async fn transcript(&self, name: &str) -> Result<Value, ClientError> {
        self.get_json(&format!("/v1/sessions/{}/transcript", segment(name)?))
            .await
    }

    /// `POST /v1/sessions/{name}/messages` as Server-Sent Events.
    pub async fn send_message(
        &self,
        name: &str,
        prompt: &str,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>>, ClientError> {
        self.stream_turn(&format!("/v1/sessions/{}/messages", segment(name)?), prompt)
            .await
    }

    /// `POST /v1/query` as Server-Sent Events: one prompt on an isolated session.
    pub async fn query(
        &self,
        prompt: &str,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>>, ClientError> {
        self.stream_turn("/v1/query", prompt).await
    }

    async fn stream_turn(
        &self,
        path: &str,
        prompt: &str,
    ) -> Result<impl Stream<Item = Result<SseEvent, ClientError>>, ClientError> {
        let (req, what) = self.request(Method::POST, path)?;
        let req = req
            .header(ACCEPT, "text/event-stream")
            .json(&json!({"prompt": prompt}));
        let response = self.send(req, &what).await?;
        let is_sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            return Err(ClientError::BadResponse {
                what: what.clone(),
                detail: "the answer is not an event stream".to_string(),
            });
        }
        let mut parser = SseParser::default();
        let events = response
            .bytes_stream()
            .map(move |chunk| match chunk {
                Ok(bytes) => Ok(parser.push(&bytes)),
                Err(source) => Err(ClientError::Http {
                    what: format!("reading the event stream of {what}"),
                    source,
                }),
            })
            .flat_map(|batch| {
                let items: Vec<Result<SseEvent, ClientError>> = match batch {
                    Ok(events) => events.into_iter().map(Ok).collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(items)
            });
        Ok(events)
    }
}

/// A session name as a path segment: the host's names are 1-64 characters of
/// `A-Z a-z 0-9 _ -`, which need no escaping; anything else is refused here rather than
/// escaped (`%2E%2E` would still be `..` to a URL parser).
fn segment(name: &str) -> Result<&str, ClientError> {
    if claude_code_serve::is_valid_name(name) {
        Ok(name)
    } else {
        Err(ClientError::InvalidName {
            name: name.to_string(),
        })
    }
}

/// The host's `{"code", "message"}` error, or a description of an unexpected body.
async fn api_error(response: Response, what: &str) -> ClientError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    #[derive(Deserialize)]
    struct Body {
        code: String,
        message: String,
    }
    match serde_json::from_str::<Body>(&text) {
        Ok(b) => ClientError::Api {
            status: status.as_u16(),
            code: b.code,
            message: b.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: default_code(status).to_string(),
            message: format!(
                "{what}: {}",
                crate::util::truncate(text.trim(), 200).if_empty("no body")
            ),
        },
    }
}

fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        _ => "http_error",
    }
}

trait IfEmpty {
    fn if_empty(self, other: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: &str) -> String {
        if self.is_empty() {
            other.to_string()
        } else {
            self
        }
    }
}

/// Incremental Server-Sent Events parser: `push` bytes as they arrive, get the events
/// completed so far. Handles `\n`, `\r\n` and `\r` line ends, comments and multi-line
/// data; `id` and `retry` are ignored.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of an unfinished line.
    line: Vec<u8>,
    /// The previous byte was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
    event: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_done(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => self.line.push(b),
            }
        }
        events
    }

    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
                return None;
            }
            let event = std::mem::take(&mut self.event);
            return Some(SseEvent {
                event: if event.is_empty() {
                    "message".to_string()
                } else {
                    event
                },
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_string(),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_parsed_across_chunks_and_line_ends() {
        let mut p = SseParser::default();
        let mut events = p.push(b": keep-alive\n\nevent: assis");
        assert!(events.is_empty());
        events.extend(p.push(b"tant\r\ndata: {\"a\":\r\ndata:1}\r\n\r"));
        events.extend(p.push(b"\ndata: plain\n\n"));
        assert_eq!(
            events,
            [
                SseEvent {
                    event: "assistant".into(),
                    data: "{\"a\":\n1}".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "plain".into()
                },
            ]
        );
    }

    #[test]
    fn servers_must_be_plain_http_urls_and_names_cannot_change_the_path() {
        assert!(Client::new("http://127.0.0.1:8787", None).is_ok());
        let c = Client::new("http://127.0.0.1:8787/prefix", Some("t")).expect("client");
        assert_eq!(
            c.url("/v1/sessions").expect("url").as_str(),
            "http://127.0.0.1:8787/prefix/v1/sessions"
        );
        for bad in ["https://h:1", "127.0.0.1:8787", "ftp://h", "http://h/?q=1"] {
            assert!(
                matches!(
                    Client::new(bad, None),
                    Err(ClientError::InvalidServer { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            Client::new("http://h", Some("bad\ntoken")),
            Err(ClientError::InvalidToken)
        ));
        assert_eq!(segment("ok_name-1").ok(), Some("ok_name-1"));
        for bad in ["..", "a/b", "x y", ""] {
            assert!(segment(bad).is_err(), "{bad}");
        }
    }
}
