//! The audit trail (`Options::audit`) of real CLI sessions against the mock API: tool
//! uses, permission and hook decisions, control requests, in the order they happened;
//! failing permission callbacks audited as fail-closed denials; a failing sink never
//! breaks the session.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use claude_code::{
    audit::{
        AuditEvent, AuditKind, Behavior, ControlDirection, ControlOutcome, DecidedBy, Redactor,
    },
    HookEvent, HookOutput, Options, PermissionResult, Session, UserInput,
};
use claude_code_tests::{ask, assert_tool_result, Reply, Script, TestEnv};
use serde_json::json;

type Log = Arc<Mutex<Vec<AuditEvent>>>;

fn recording(options: Options) -> (Options, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let options = options.audit(move |e| sink.lock().expect("lock").push(e.clone()));
    (options, log)
}

fn events(log: &Log) -> Vec<AuditEvent> {
    log.lock().expect("lock").clone()
}

/// Position of the first event at or after `from` matching `pred`, or a panic that shows
/// the whole trail.
fn position(
    events: &[AuditEvent],
    from: usize,
    what: &str,
    pred: impl Fn(&AuditKind) -> bool,
) -> usize {
    events
        .iter()
        .skip(from)
        .position(|e| pred(&e.kind))
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("no {what} at or after #{from} in {:#?}", kinds(events)))
}

fn kinds(events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_run_with_an_allowed_and_a_denied_tool_and_a_hook_is_audited_in_order() {
    let env = TestEnv::new(Script::new()).await;
    let denied = env.cwd.path().join("denied.txt");
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo sk-test-key allowed", "description": "echo"}),
    ));
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": format!("touch {}", denied.display()), "description": "touch"}),
    ));
    env.mock.push(Reply::text("done"));
    let (options, log) = recording(
        env.options()
            .hook(HookEvent::PreToolUse, Some("Bash"), |_| async {
                HookOutput::ask("the hook wants the callback to decide")
            })
            .can_use_tool(|req| async move {
                let command = req.input["command"].as_str().unwrap_or("").to_string();
                if command.starts_with("echo") {
                    PermissionResult::allow()
                } else {
                    PermissionResult::deny("no touching in this test")
                }
            }),
    );
    let session = Session::start(options).await.expect("start");
    let text = ask(
        &session,
        UserInput::text("go").with_audit_context("tenant-a"),
    )
    .await;
    assert_eq!(text, "done");
    assert!(!denied.exists(), "the denied tool did not run");
    assert_tool_result(&env.mock.turn_requests()[2], "no touching in this test");
    session.stop().await.expect("stop");
    // `stop` returns after the sink has seen every event.
    let events = events(&log);

    let init = position(
        &events,
        0,
        "initialize",
        |k| matches!(k, AuditKind::ControlRequest { direction: ControlDirection::Outbound, subtype, outcome: ControlOutcome::Ok, .. } if subtype == "initialize"),
    );
    let first = position(&events, init, "the first tool use", |k| {
        matches!(k, AuditKind::ToolUse { name, input, .. }
            if name == "Bash" && input["command"] == "echo [redacted] allowed")
    });
    let AuditKind::ToolUse { id: first_id, .. } = &events[first].kind else {
        unreachable!()
    };
    let hook = position(&events, first, "the hook's decision", |k| {
        matches!(k, AuditKind::HookDecision { event, tool, permission_decision, reason, decided_by: DecidedBy::Callback, .. }
            if event == "PreToolUse" && tool.as_deref() == Some("Bash")
                && permission_decision.as_deref() == Some("ask")
                && reason.as_deref() == Some("the hook wants the callback to decide"))
    });
    let hook_request = position(
        &events,
        hook,
        "the hook_callback request",
        |k| matches!(k, AuditKind::ControlRequest { direction: ControlDirection::Inbound, subtype, outcome: ControlOutcome::Ok, .. } if subtype == "hook_callback"),
    );
    let allow = position(&events, hook, "the allow", |k| {
        matches!(k, AuditKind::PermissionDecision { tool, behavior: Behavior::Allow, decided_by: DecidedBy::Callback, input, message: None, .. }
            if tool == "Bash" && input["command"] == "echo [redacted] allowed")
    });
    let allow_request = position(
        &events,
        allow,
        "the can_use_tool request",
        |k| matches!(k, AuditKind::ControlRequest { direction: ControlDirection::Inbound, subtype, outcome: ControlOutcome::Ok, request_id, .. } if subtype == "can_use_tool" && !request_id.is_empty()),
    );
    let ok_result = position(
        &events,
        allow,
        "the first tool's result",
        |k| matches!(k, AuditKind::ToolResult { tool_use_id, is_error: false } if tool_use_id == first_id),
    );
    let second = position(&events, ok_result, "the second tool use", |k| {
        matches!(k, AuditKind::ToolUse { name, input, .. }
            if name == "Bash" && input["command"].as_str().is_some_and(|c| c.starts_with("touch")))
    });
    let AuditKind::ToolUse { id: second_id, .. } = &events[second].kind else {
        unreachable!()
    };
    let deny = position(&events, second, "the deny", |k| {
        matches!(k, AuditKind::PermissionDecision { tool, behavior: Behavior::Deny, decided_by: DecidedBy::Callback, message: Some(m), .. }
            if tool == "Bash" && m == "no touching in this test")
    });
    position(
        &events,
        deny,
        "the denied tool's error result",
        |k| matches!(k, AuditKind::ToolResult { tool_use_id, is_error: true } if tool_use_id == second_id),
    );
    assert!(
        hook < allow && allow < allow_request && hook < hook_request,
        "{:#?}",
        kinds(&events)
    );

    // Every event of the turn carries the CLI's session id and the turn's context; the
    // handshake happened before any turn.
    let turn_events = &events[first..];
    assert!(
        turn_events
            .iter()
            .all(|e| e.context.as_deref() == Some("tenant-a")),
        "{:#?}",
        kinds(&events)
    );
    assert!(turn_events.iter().all(|e| e.session_id.is_some()));
    assert_eq!(events[init].context, None);
    // The real key never reaches the sink.
    assert!(!kinds(&events).concat().contains("sk-test-key"));
}

#[tokio::test]
async fn failing_permission_callbacks_are_audited_as_fail_closed_denials() {
    type Callback = fn(
        claude_code::ToolPermissionRequest,
    ) -> futures::future::BoxFuture<'static, PermissionResult>;
    let panics: Callback = |_| Box::pin(async { panic!("callback bug") });
    let hangs: Callback = |_| {
        Box::pin(async {
            std::future::pending::<()>().await;
            PermissionResult::allow()
        })
    };
    let garbage: Callback = |_| {
        Box::pin(async { PermissionResult::allow().updated_input(json!(["not", "an", "object"])) })
    };
    for (callback, needle) in [
        (panics, "panicked: callback bug"),
        (hangs, "did not answer within"),
        (garbage, "must be a JSON object"),
    ] {
        let env = TestEnv::new(Script::new()).await;
        let target = env.cwd.path().join("never.txt");
        env.mock.push(Reply::tool_use(
            "Bash",
            json!({"command": format!("touch {}", target.display()), "description": "touch"}),
        ));
        env.mock.push(Reply::text("carried on"));
        let (options, log) = recording(
            env.options()
                .callback_timeout(Duration::from_millis(500))
                .can_use_tool(callback),
        );
        let session = Session::start(options).await.expect("start");
        assert_eq!(ask(&session, "go").await, "carried on");
        assert!(!target.exists(), "{needle}: the tool did not run");
        session.stop().await.expect("stop");
        let events = events(&log);
        position(&events, 0, needle, |k| {
            matches!(k, AuditKind::PermissionDecision { behavior: Behavior::Deny, decided_by: DecidedBy::CallbackFailed { failure }, message: Some(m), .. }
                if failure.contains(needle) && m.contains("the tool was not run"))
        });
    }
}

#[tokio::test]
async fn a_panicking_or_slow_sink_does_not_break_the_session() {
    let env = TestEnv::new(Script::new()).await;
    env.mock.push(Reply::tool_use(
        "Bash",
        json!({"command": "echo hi", "description": "echo"}),
    ));
    env.mock.push(Reply::text("first"));
    env.mock.push(Reply::text("second"));
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let options = env
        .options()
        .allowed_tools(["Bash"])
        .audit(move |e| {
            *counter.lock().expect("lock") += 1;
            if matches!(e.kind, AuditKind::ToolUse { .. }) {
                panic!("sink bug");
            }
            // Slow, but only its own task waits.
            std::thread::sleep(Duration::from_millis(20));
        })
        .audit_redactor(Redactor::new().max_string_bytes(64));
    let session = Session::start(options).await.expect("start");
    assert_eq!(ask(&session, "one").await, "first");
    assert_eq!(ask(&session, "two").await, "second");
    session.stop().await.expect("stop");
    let calls = *calls.lock().expect("lock");
    assert!(
        calls >= 3,
        "the sink kept being called after panicking: {calls}"
    );
}
