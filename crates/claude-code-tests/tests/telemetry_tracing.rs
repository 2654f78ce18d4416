//! Tracing output of a real session: the session, turn, control-request and tool-use
//! spans exist with their structured fields, and the API key in the session's
//! environment never shows up in any span, event or formatted log line. The test runs
//! on a current-thread runtime so the thread-local subscriber sees the session's tasks.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::io::Write;
use std::sync::{Arc, Mutex};

use claude_code::{HookEvent, HookOutput, Session};
use claude_code_tests::{Reply, Script, TestEnv};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

type Fields = BTreeMap<String, String>;

/// What the capturing layer saw.
#[derive(Default)]
struct Seen {
    open: HashMap<u64, (String, Fields)>,
    /// Closed spans: name and final fields.
    spans: Vec<(String, Fields)>,
    /// Events: message and fields.
    events: Vec<Fields>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let name = attrs.metadata().name().to_string();
        let mut seen = self.0.lock().expect("lock");
        seen.open.insert(id.into_u64(), (name, fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut seen = self.0.lock().expect("lock");
        if let Some((_, fields)) = seen.open.get_mut(&id.into_u64()) {
            values.record(&mut Visitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().expect("lock").events.push(fields);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut seen = self.0.lock().expect("lock");
        if let Some(span) = seen.open.remove(&id.into_u64()) {
            seen.spans.push(span);
        }
    }
}

/// A `MakeWriter` that appends formatted log lines to a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

fn span<'a>(seen: &'a Seen, name: &str, pick: impl Fn(&Fields) -> bool) -> &'a Fields {
    seen.spans
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, f)| f)
        .find(|f| pick(f))
        .unwrap_or_else(|| {
            panic!(
                "no closed `{name}` span matching; saw {:#?}",
                seen.spans
                    .iter()
                    .filter(|(n, _)| n == name)
                    .collect::<Vec<_>>()
            )
        })
}

#[tokio::test]
async fn spans_carry_structured_fields_and_never_the_api_key() {
    let capture = Capture::default();
    let logs = Buffer::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone()).with(
        tracing_subscriber::fmt::layer()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let env = TestEnv::new(Script::new()).await;
    let target = env.cwd.path().join("never.txt");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {}", target.display()), "description": "touch"}),
    ));
    env.mock.push(Reply::text("done").usage(100, 20));
    let options = env.options().allowed_tools(["Bash"]).hook(
        HookEvent::PreToolUse,
        Some("Bash"),
        |_| async { HookOutput::deny("not in this test") },
    );
    tracing::debug!(?options, "starting a session");
    let session = Session::start(options).await.expect("start");
    let summary = session
        .stream("touch it")
        .await
        .expect("stream")
        .collect()
        .await
        .expect("turn");
    assert_eq!(summary.text, "done");
    let id = summary.session_id().expect("session id").to_string();
    session.stop().await.expect("stop");
    drop(session);

    let seen = capture.0.lock().expect("lock");
    let turn = span(&seen, "claude_code.turn", |f| {
        f.get("turn").map(String::as_str) == Some("1")
    });
    assert_eq!(turn.get("session"), Some(&id), "{turn:?}");
    assert_eq!(turn.get("outcome").map(String::as_str), Some("success"));
    assert!(turn.contains_key("duration_ms") && turn.contains_key("cost_usd"));
    let input: u64 = turn
        .get("input_tokens")
        .and_then(|v| v.parse().ok())
        .expect("input_tokens");
    assert!(input >= 100, "{turn:?}");

    let control = span(&seen, "claude_code.control", |f| {
        f.get("subtype").map(String::as_str) == Some("hook_callback")
    });
    assert_eq!(
        control.get("direction").map(String::as_str),
        Some("inbound")
    );
    assert!(!control.get("request_id").expect("request_id").is_empty());
    assert_eq!(control.get("outcome").map(String::as_str), Some("ok"));

    let tool = span(&seen, "claude_code.tool_use", |f| {
        f.get("tool").map(String::as_str) == Some("Bash")
    });
    assert_eq!(
        tool.get("outcome").map(String::as_str),
        Some("error"),
        "denied"
    );
    assert!(tool.get("tool_use_id").is_some_and(|t| !t.is_empty()));

    let session_span = span(&seen, "claude_code.session", |f| f.contains_key("pid"));
    assert_eq!(session_span.get("session"), Some(&id));
    assert!(seen
        .events
        .iter()
        .any(|e| e.get("message").map(String::as_str) == Some("session started")));
    assert!(seen
        .events
        .iter()
        .any(|e| e.get("message").map(String::as_str) == Some("session stopped")));

    let secret = "sk-test-key";
    let text = String::from_utf8_lossy(&logs.0.lock().expect("lock")).into_owned();
    assert!(
        text.contains("claude_code.turn"),
        "the fmt layer saw the spans"
    );
    let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
    assert!(
        leaks.is_empty(),
        "the API key leaked into the logs: {leaks:#?}"
    );
    let captured = format!("{:?} {:?}", seen.spans, seen.events);
    assert!(
        !captured.contains(secret),
        "the API key leaked into a field"
    );
}
