//! The dashboard at `GET /` and its live feed `GET /v1/events`.
//!
//! The page is rendered on the server for the caller (their sessions, the host's health,
//! the offline banner) from templates embedded in the binary, with its CSS and plain
//! JavaScript inline: no CDN, no build step, works offline. The script then keeps it live
//! over `/v1/events`, which it reads with `fetch()` so that it can send the bearer token.

use std::{
    convert::Infallible,
    sync::{atomic::Ordering, Arc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use serde_json::{json, Value};

use crate::{
    auth::{Caller, Scope},
    body::{ErrorBody, SessionObject},
    error::ApiError,
    state::AppState,
};

const PAGE: &str = include_str!("../assets/dashboard.html");
const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");

/// What the page may load and where its script may connect: this host only, so a page
/// that reaches for anything else fails in the browser too.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// How often the feed sends the caller's sessions.
const FEED_PERIOD: Duration = Duration::from_secs(1);

/// `GET /`: the dashboard. A request that does not authenticate (or may not read) gets
/// the page without sessions; its script then asks for a token.
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses(
        (status = 200, description = "The dashboard: HTML rendered for the caller, with its CSS and script inline (a page without sessions that asks for a token when the request carries none)",
            content_type = "text/html", body = String),
    ))]
pub(crate) async fn page(State(state): State<Arc<AppState>>, caller: Option<Caller>) -> Response {
    let caller = caller.filter(|c| c.require(Scope::Read).is_ok());
    let (auth, rows, options, feed_state) = match &caller {
        None => (
            "required",
            empty_row("a token is needed to see this host's sessions"),
            String::new(),
            "waiting for a token",
        ),
        Some(caller) => match sessions(&state, caller).await {
            Ok(sessions) => {
                let now = unix_now();
                let rows = if sessions.is_empty() {
                    empty_row("no sessions yet: send a prompt to a new one below")
                } else {
                    sessions.iter().map(|s| row(s, now)).collect()
                };
                let options = sessions
                    .iter()
                    .map(|s| {
                        let name = escape_html(&s.name);
                        format!("<option value=\"{name}\">{name}</option>")
                    })
                    .collect();
                ("ok", rows, options, "connecting…")
            }
            Err(e) => (
                "ok",
                empty_row(&format!("sessions unavailable: {}", e.body().message)),
                String::new(),
                "connecting…",
            ),
        },
    };
    let health = health(&state);
    let health_html = format!(
        "<span class=\"{status}\">{status}</span> · {mode}",
        status = escape_html(health["status"].as_str().unwrap_or_default()),
        mode = if state.offline {
            "offline: built-in mock Messages API"
        } else {
            "online"
        },
    );
    let banner = if state.offline {
        "<div id=\"offline-banner\" class=\"banner\" role=\"status\"><strong>Offline.</strong> \
         No ANTHROPIC_API_KEY: every session talks to this host's built-in mock Messages API, \
         so replies come from the mock and nothing reaches Anthropic.</div>"
    } else {
        ""
    };
    let html = fill(
        PAGE,
        &[
            ("css", CSS),
            ("js", JS),
            ("auth", auth),
            ("health", &health_html),
            ("banner", banner),
            ("rows", &rows),
            ("options", &options),
            ("feed_state", feed_state),
        ],
    );
    let mut response = html.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `GET /v1/events`: Server-Sent Events, one `sessions` event right away and then every
/// second, `{"sessions": [session objects of GET /v1/sessions], "totals": {"turns",
/// "cost_usd"}, "health": {"status", "offline"}, "at": unix seconds}`. Totals add up the
/// caller's current sessions (the ledger's figures, as the session objects carry them). The feed ends when the host drains; an error ends it with
/// one `error` event (`{"code", "message"}`).
#[utoipa::path(get, path = "/v1/events", tag = "dashboard",
    responses(
        (status = 200, description = "Server-Sent Events: a `sessions` event at once and then every second, `{\"sessions\": [session objects], \"totals\": {\"turns\", \"cost_usd\"}, \"health\": {\"status\", \"offline\"}, \"at\"}`; it ends when the host drains, or after one `error` event",
            content_type = "text/event-stream", body = String),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 429, description = "The tenant's rate limit", body = ErrorBody),
    ))]
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let mut ticks = tokio::time::interval(FEED_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = futures::stream::unfold(Some((state, caller, ticks)), |next| async move {
        let (state, caller, mut ticks) = next?;
        ticks.tick().await; // the first tick is immediate
        if state.draining.load(Ordering::Relaxed) {
            return None;
        }
        match snapshot(&state, &caller).await {
            Ok(snap) => Some((event("sessions", &snap), Some((state, caller, ticks)))),
            Err(e) => Some((event("error", &json!(e.body())), None)),
        }
    });
    Ok(Sse::new(feed)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn event(name: &str, data: &Value) -> Result<Event, Infallible> {
    Ok(Event::default().event(name).data(data.to_string()))
}

/// The caller's session objects, as `GET /v1/sessions` lists them.
async fn sessions(state: &AppState, caller: &Caller) -> Result<Vec<SessionObject>, ApiError> {
    let list = state.list(caller).await?;
    state.describe(caller, &list).await
}

/// One feed event's data.
async fn snapshot(state: &AppState, caller: &Caller) -> Result<Value, ApiError> {
    let sessions = sessions(state, caller).await?;
    let turns: u64 = sessions.iter().map(|s| s.turns).sum();
    let cost_usd: f64 = sessions.iter().map(|s| s.cost_usd).sum();
    Ok(json!({
        "sessions": sessions,
        "totals": {"turns": turns, "cost_usd": cost_usd},
        "health": health(state),
        "at": unix_now(),
    }))
}

/// `{"status": "ready" | "draining", "offline": bool}`.
fn health(state: &AppState) -> Value {
    let status = if state.draining.load(Ordering::Relaxed) {
        "draining"
    } else {
        "ready"
    };
    json!({"status": status, "offline": state.offline})
}

/// One row of the session table, as the script renders it too.
fn row(s: &SessionObject, now: u64) -> String {
    let name = escape_html(&s.name);
    let status = escape_html(s.status);
    format!(
        "<tr data-name=\"{name}\"><td class=\"name\">{name}</td>\
         <td class=\"status status-{status}\">{status}</td><td class=\"num\">{restarts}</td>\
         <td class=\"num\">{turns}</td><td class=\"num\">${cost:.4}</td>\
         <td class=\"ago\">{ago}</td></tr>",
        restarts = s.restarts,
        turns = s.turns,
        cost = s.cost_usd,
        ago = ago(s.last_activity, now),
    )
}

fn empty_row(text: &str) -> String {
    format!(
        "<tr><td class=\"muted\" colspan=\"6\">{}</td></tr>",
        escape_html(text)
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long ago `ts` (unix seconds) was, worded like the script's `ago()`.
fn ago(ts: Option<u64>, now: u64) -> String {
    let Some(ts) = ts else {
        return "—".to_string();
    };
    match now.saturating_sub(ts) {
        s if s < 5 => "just now".to_string(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86400 => format!("{} h ago", s / 3600),
        s => format!("{} d ago", s / 86400),
    }
}

/// `text` safe inside HTML text and double- or single-quoted attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Replaces each `{{key}}` of `template` with its value in one pass, so that a value is
/// never scanned for placeholders itself; an unknown `{{…}}` is left as it is.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let hit = after.find("}}").and_then(|end| {
            let key = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (end, *v))
        });
        match hit {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn placeholders_are_filled_once_and_values_are_not_rescanned() {
        let out = fill(
            "<p>{{a}}|{{b}}|{{unknown}}|{{</p>",
            &[("a", "{{b}}"), ("b", "B")],
        );
        assert_eq!(out, "<p>{{b}}|B|{{unknown}}|{{</p>");
    }

    #[test]
    fn a_row_escapes_its_values() {
        let s = SessionObject {
            name: "<x>".into(),
            status: "live\"",
            session_id: None,
            pid: None,
            restarts: 2,
            turns: 3,
            cost_usd: 0.5,
            started_at: None,
            last_activity: Some(100),
            owner: None,
        };
        let html = row(&s, 130);
        assert!(html.contains("data-name=\"&lt;x&gt;\""), "{html}");
        assert!(html.contains("status-live&quot;"), "{html}");
        assert!(
            html.contains("$0.5000") && html.contains("30 s ago"),
            "{html}"
        );
        assert!(!html.contains("<x>"), "{html}");
    }

    #[test]
    fn ago_reads_like_the_script() {
        assert_eq!(ago(None, 10), "—");
        assert_eq!(ago(Some(10), 12), "just now");
        assert_eq!(ago(Some(0), 59), "59 s ago");
        assert_eq!(ago(Some(0), 3599), "59 min ago");
        assert_eq!(ago(Some(0), 7200), "2 h ago");
        assert_eq!(ago(Some(0), 3 * 86400), "3 d ago");
        assert_eq!(
            ago(Some(100), 50),
            "just now",
            "a clock step back is not negative"
        );
    }

    #[test]
    fn the_assets_fit_the_page() {
        for key in ["css", "js", "auth", "health", "banner", "rows", "options"] {
            assert!(PAGE.contains(&format!("{{{{{key}}}}}")), "{key}");
        }
        assert!(!JS.contains("</script") && !CSS.contains("</style"));
    }
}
