//! The proxy's HTTP side: the accept loop, the per-request checks, and forwarding with
//! bodies streamed through frame by frame.

use std::{
    collections::HashMap,
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    header::{self, HeaderMap, HeaderName, HeaderValue},
    server::conn::http1,
    service::service_fn,
    Request, Response, StatusCode, Uri,
};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};

use super::{usage::UsageScanner, Credential, GrantState, ProxyConfig, ProxyError, Refusal};
use crate::BUDGET_EXCEEDED_CODE;

type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The upstream base URL, split for joining with request paths.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// As configured (for messages).
    pub(crate) base: String,
    scheme: hyper::http::uri::Scheme,
    authority: hyper::http::uri::Authority,
    /// The base's path without its trailing `/` (empty for none).
    prefix: String,
}

impl Upstream {
    fn parse(url: &str) -> Result<Upstream, ProxyError> {
        let bad = |problem: &str| ProxyError::InvalidUpstream {
            url: url.to_string(),
            problem: problem.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("is not a URL; give e.g. https://api.anthropic.com"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("has no scheme"))?;
        if scheme != hyper::http::uri::Scheme::HTTP && scheme != hyper::http::uri::Scheme::HTTPS {
            return Err(bad("must be http:// or https://"));
        }
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .cloned()
            .ok_or_else(|| bad("has no host"))?;
        if uri.query().is_some() {
            return Err(bad("must not carry a query"));
        }
        Ok(Upstream {
            base: url.to_string(),
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The upstream URI for a request's path and query.
    fn join(&self, uri: &Uri) -> Result<Uri, hyper::http::Error> {
        let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{pq}", self.prefix))
            .build()
    }
}

/// What the accept loop and every request share.
pub(crate) struct Shared {
    pub(crate) upstream: Upstream,
    /// The header the real credential travels in, ready to insert.
    credential: (HeaderName, HeaderValue),
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    /// Token → session.
    pub(crate) grants: Mutex<HashMap<String, Arc<GrantState>>>,
}

impl Shared {
    pub(crate) fn new(config: &ProxyConfig) -> Result<Shared, ProxyError> {
        let upstream = Upstream::parse(&config.upstream)?;
        let secret = config.credential.secret().expose();
        let (name, value) = match &config.credential {
            Credential::ApiKey(_) => (HeaderName::from_static("x-api-key"), secret.to_string()),
            Credential::AuthToken(_) => (header::AUTHORIZATION, format!("Bearer {secret}")),
        };
        if secret.is_empty() {
            return Err(ProxyError::InvalidCredential);
        }
        let mut value = HeaderValue::from_str(&value).map_err(|_| ProxyError::InvalidCredential)?;
        value.set_sensitive(true);
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let tls =
            tls_config(upstream.scheme == hyper::http::uri::Scheme::HTTPS).map_err(|problem| {
                ProxyError::RootCertificates {
                    url: config.upstream.clone(),
                    problem,
                }
            })?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Shared {
            upstream,
            credential: (name, value),
            client,
            grants: Mutex::new(HashMap::new()),
        })
    }
}

/// rustls on ring with its safe defaults; the system's roots for an `https` upstream, none
/// for a plain `http` one (a local gateway or a mock: a host without certificates still
/// works).
fn tls_config(https: bool) -> Result<rustls::ClientConfig, String> {
    use hyper_rustls::ConfigBuilderExt;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?;
    let builder = if https {
        builder.with_native_roots().map_err(|e| e.to_string())?
    } else {
        builder.with_root_certificates(rustls::RootCertStore::empty())
    };
    Ok(builder.with_no_client_auth())
}

/// Accepts connections until aborted; dropping the `JoinSet` aborts every connection.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                Err(error) => {
                    tracing::warn!(%error, "credential proxy: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "credential proxy: connection ended with an error");
    }
}

/// The session token a request carries (`x-api-key`, or `Authorization: Bearer`).
fn token_of(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let grant = token_of(req.headers())
        .and_then(|t| shared.grants().get(t).cloned())
        .map(|g| (g, token_of(req.headers()).unwrap_or_default().to_string()));
    let Some((grant, token)) = grant else {
        return Ok(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key: the credential proxy knows no session with this token (never \
             granted, or revoked when its session ended)",
            None,
        ));
    };
    match grant.admit(Instant::now()) {
        Ok(()) => {}
        Err(Refusal::Budget { spent, max }) => {
            tracing::info!(session = %grant.grant.label, spent, max, "credential proxy: budget spent, request refused");
            return Ok(error(
                StatusCode::PAYMENT_REQUIRED,
                BUDGET_EXCEEDED_CODE,
                &format!(
                    "{BUDGET_EXCEEDED_CODE}: session `{}` has spent ${spent:.4} of its ${max:.4} \
                     budget at the credential proxy",
                    grant.grant.label
                ),
                None,
            ));
        }
        Err(Refusal::Rate { retry_after, limit }) => {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            return Ok(error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                &format!(
                    "session `{}` is over its {limit} requests per minute at the credential \
                     proxy; retry in {secs} s",
                    grant.grant.label
                ),
                Some(secs),
            ));
        }
    }
    Ok(forward(&shared, req, grant, &token).await)
}

/// Hop-by-hop headers, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

async fn forward(
    shared: &Shared,
    req: Request<Incoming>,
    grant: Arc<GrantState>,
    token: &str,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let uri = match shared.upstream.join(&parts.uri) {
        Ok(uri) => uri,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("the credential proxy cannot forward this path: {e}"),
                None,
            )
        }
    };
    let mut headers = std::mem::take(&mut parts.headers);
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::HOST);
    headers.remove("x-api-key");
    headers.remove(header::AUTHORIZATION);
    // Usage is read from the response as it passes: ask for it uncompressed.
    headers.remove(header::ACCEPT_ENCODING);
    // No header that carries the token goes upstream, whatever its name.
    let carrying: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| memchr::memmem::find(v.as_bytes(), token.as_bytes()).is_some())
        .map(|(k, _)| k.clone())
        .collect();
    for name in carrying {
        headers.remove(name);
    }
    headers.insert(shared.credential.0.clone(), shared.credential.1.clone());
    parts.headers = headers;
    parts.uri = uri;
    let upstream_req = Request::from_parts(parts, body);
    match shared.client.request(upstream_req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(name);
            }
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let tapped = Tapped {
                inner: body,
                scanner: UsageScanner::new(content_type),
                grant,
                done: false,
            };
            Response::from_parts(parts, UnsyncBoxBody::new(tapped))
        }
        Err(e) => {
            tracing::warn!(session = %grant.grant.label, upstream = %shared.upstream.base,
                error = %e, "credential proxy: upstream unreachable");
            error(
                StatusCode::BAD_GATEWAY,
                "api_error",
                &format!(
                    "the credential proxy cannot reach the upstream API at {}: {}",
                    shared.upstream.base,
                    error_chain(&e)
                ),
                None,
            )
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An error in the Messages API's shape: `{"type":"error","error":{"type","message"}}`.
fn error(
    status: StatusCode,
    kind: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    });
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
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

/// The upstream's response body, passed on frame by frame while its usage is read.
struct Tapped {
    inner: Incoming,
    scanner: UsageScanner,
    grant: Arc<GrantState>,
    done: bool,
}

impl Body for Tapped {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let added = this.scanner.feed(data);
                    this.grant.add_tokens(&added);
                }
            }
            Poll::Ready(None) if !this.done => {
                this.done = true;
                let added = this.scanner.finish();
                this.grant.add_tokens(&added);
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
