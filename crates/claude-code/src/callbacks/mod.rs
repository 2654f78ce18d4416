//! Callbacks the CLI invokes over the control protocol: the permission callback
//! (`can_use_tool`), hooks (`hook_callback`), in-process MCP servers (`mcp_message`) and
//! MCP elicitation (`elicitation`). This module holds what the user registered and
//! answers one request; the session runs each answer on its own task (so a slow callback
//! never blocks the session) and cancels it on `control_cancel_request`.
//!
//! Every piece of user code runs guarded: a panic, a timeout or an answer that makes no
//! sense never hangs the session, and never lets a tool run that a gate did not allow.
//! Failures **fail closed**: a failing permission callback, `PreToolUse` or
//! `PermissionRequest` hook denies the tool and tells the model why; a failing MCP tool
//! is an error result; a failing elicitation callback cancels the elicitation. Other
//! hooks (observers such as `PostToolUse`) answer the CLI with an error, which it logs
//! and goes on.

pub mod elicitation;
pub mod hooks;
pub mod mcp;
pub mod permissions;
pub(crate) mod registration;

use std::{sync::Arc, time::Duration};

use serde_json::{json, Value};

use crate::audit::{AuditKind, AuditScope, Behavior, DecidedBy, Redactor};
use crate::protocol::{InboundRequest, InitializeRequest};
use elicitation::{ElicitationFn, ElicitationRequest, ElicitationResponse};
use hooks::{HookInput, HookOutput, HookRegistration};
use mcp::{guarded, McpServer};
use permissions::{CanUseToolFn, PermissionResult, ToolPermissionRequest};

/// Everything registered for one session. Cheap to clone (closures are shared).
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    pub(crate) can_use_tool: Option<CanUseToolFn>,
    pub(crate) hooks: Vec<HookRegistration>,
    pub(crate) mcp_servers: Vec<Arc<McpServer>>,
    pub(crate) on_elicitation: Option<ElicitationFn>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("can_use_tool", &self.can_use_tool.is_some())
            .field("hooks", &self.hooks)
            .field(
                "mcp_servers",
                &self.mcp_servers.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("on_elicitation", &self.on_elicitation.is_some())
            .finish()
    }
}

impl Callbacks {
    /// The `initialize` request carrying the hook registrations.
    pub(crate) fn initialize_request(&self) -> InitializeRequest {
        match hooks::initialize_config(&self.hooks) {
            Some(config) => InitializeRequest::new().with_hooks(config),
            None => InitializeRequest::new(),
        }
    }

    /// Answers one CLI request: the success payload, or an error message for the CLI.
    /// `timeout` bounds the permission callback, MCP handlers and the elicitation
    /// callback; each hook has its own. Permission and hook decisions and in-process MCP
    /// tool calls are recorded through `audit` (a no-op when not auditing).
    pub(crate) async fn answer(
        &self,
        request: InboundRequest,
        timeout: Duration,
        audit: &AuditScope,
    ) -> Result<Value, String> {
        match request {
            InboundRequest::CanUseTool(req) => {
                let original = req.input.clone();
                let tool = req.tool_name.clone();
                let tool_use_id = req.tool_use_id.clone();
                let (decision, decided_by) = match &self.can_use_tool {
                    None => (
                        PermissionResult::deny(
                            "no permission callback is registered in the SDK; the tool was not run",
                        ),
                        DecidedBy::NoCallback,
                    ),
                    Some(callback) => {
                        match guarded(callback(ToolPermissionRequest::from(*req)), timeout).await {
                            Ok(decision) => match decision.check() {
                                Ok(()) => (decision, DecidedBy::Callback),
                                Err(why) => (
                                    fail_closed_permission(&tool, &why),
                                    DecidedBy::CallbackFailed { failure: why },
                                ),
                            },
                            Err(failure) => {
                                let why = format!("the permission callback {failure}");
                                (
                                    fail_closed_permission(&tool, &why),
                                    DecidedBy::CallbackFailed { failure: why },
                                )
                            }
                        }
                    }
                };
                audit.emit(|r| {
                    permission_event(r, &tool, tool_use_id, &original, &decision, decided_by)
                });
                Ok(decision.to_wire(&original))
            }
            InboundRequest::HookCallback(req) => {
                let hook = req
                    .callback_id
                    .strip_prefix("hook_")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|i| self.hooks.get(i))
                    .ok_or_else(|| format!("unknown hook callback id {}", req.callback_id))?;
                let input = HookInput::from_wire(req.input, req.tool_use_id);
                let event = if input.event.is_empty() {
                    hook.event.as_str().to_string()
                } else {
                    input.event.clone()
                };
                let (tool, tool_use_id) = (input.tool_name.clone(), input.tool_use_id.clone());
                let hook_event = |output: Option<&HookOutput>, decided_by| {
                    let callback_id = req.callback_id.clone();
                    let (event, tool, tool_use_id) =
                        (event.clone(), tool.clone(), tool_use_id.clone());
                    audit.emit(|r| {
                        hook_decision_event(
                            r,
                            event,
                            callback_id,
                            tool,
                            tool_use_id,
                            output,
                            decided_by,
                        )
                    });
                };
                let gate = hooks::is_gate(&event);
                let output = match guarded((hook.callback)(input), hook.timeout).await {
                    Ok(output) => match output.check(&event) {
                        Ok(()) => {
                            hook_event(Some(&output), DecidedBy::Callback);
                            output
                        }
                        Err(why) if gate => {
                            let output = fail_closed_hook(&event, &why);
                            hook_event(Some(&output), DecidedBy::CallbackFailed { failure: why });
                            output
                        }
                        Err(why) => {
                            hook_event(
                                None,
                                DecidedBy::CallbackFailed {
                                    failure: why.clone(),
                                },
                            );
                            return Err(why);
                        }
                    },
                    Err(failure) if gate => {
                        let why = format!("the {event} hook {failure}");
                        let output = fail_closed_hook(&event, &why);
                        hook_event(Some(&output), DecidedBy::CallbackFailed { failure: why });
                        output
                    }
                    Err(failure) => {
                        tracing::warn!(event, error = failure, "hook callback failed");
                        let why = format!("the {event} hook {failure}");
                        hook_event(
                            None,
                            DecidedBy::CallbackFailed {
                                failure: why.clone(),
                            },
                        );
                        return Err(why);
                    }
                };
                Ok(output.to_wire(&event))
            }
            InboundRequest::McpMessage(req) => {
                let response = match self.mcp_servers.iter().find(|s| s.name == req.server_name) {
                    Some(server) => server.handle(&req.message, timeout).await,
                    None => json!({
                        "jsonrpc": "2.0",
                        "id": req.message.get("id").cloned().unwrap_or(Value::Null),
                        "error": {"code": -32601, "message": format!("unknown MCP server {}", req.server_name)},
                    }),
                };
                if req.message.get("method").and_then(Value::as_str) == Some("tools/call") {
                    audit.emit(|r| {
                        let params = req.message.get("params");
                        let field = |k: &str| params.and_then(|p| p.get(k));
                        AuditKind::McpToolCall {
                            server: req.server_name.clone(),
                            tool: field("name")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            arguments: r.value(field("arguments").unwrap_or(&Value::Null)),
                            is_error: response.get("error").is_some()
                                || response.pointer("/result/isError").and_then(Value::as_bool)
                                    == Some(true),
                        }
                    });
                }
                Ok(json!({ "mcp_response": response }))
            }
            InboundRequest::Unknown { subtype, raw } if subtype == "elicitation" => {
                let Some(callback) = &self.on_elicitation else {
                    return Ok(ElicitationResponse::Decline.to_wire());
                };
                let request = ElicitationRequest::from_wire(raw);
                let server = request.server_name.clone();
                let response = match guarded(callback(request), timeout).await {
                    Ok(ElicitationResponse::Accept(content)) if !content.is_object() => {
                        tracing::warn!(server, "elicitation answer is not an object; cancelled");
                        ElicitationResponse::Cancel
                    }
                    Ok(response) => response,
                    Err(failure) => {
                        tracing::warn!(server, error = failure, "elicitation callback failed");
                        ElicitationResponse::Cancel
                    }
                };
                Ok(response.to_wire())
            }
            InboundRequest::Unknown { subtype, .. } => {
                Err(format!("Unsupported control request subtype: {subtype}"))
            }
        }
    }
}

/// The audit event for a permission decision.
fn permission_event(
    r: &Redactor,
    tool: &str,
    tool_use_id: Option<String>,
    input: &Value,
    decision: &PermissionResult,
    decided_by: DecidedBy,
) -> AuditKind {
    let (behavior, message, interrupt, input_rewritten) = match decision {
        PermissionResult::Allow { updated_input, .. } => {
            (Behavior::Allow, None, false, updated_input.is_some())
        }
        PermissionResult::Deny { message, interrupt } => {
            (Behavior::Deny, Some(r.text(message)), *interrupt, false)
        }
    };
    AuditKind::PermissionDecision {
        tool: tool.to_string(),
        tool_use_id,
        input: r.value(input),
        behavior,
        message,
        interrupt,
        input_rewritten,
        decided_by,
    }
}

/// The audit event for a hook's answer (`None`: the hook failed and the CLI got an
/// error).
fn hook_decision_event(
    r: &Redactor,
    event: String,
    callback_id: String,
    tool: Option<String>,
    tool_use_id: Option<String>,
    output: Option<&HookOutput>,
    decided_by: DecidedBy,
) -> AuditKind {
    let specific = |k: &str| output.and_then(|o| o.specific.get(k));
    let permission_decision = specific("permissionDecision")
        .or_else(|| specific("decision").and_then(|d| d.get("behavior")))
        .and_then(Value::as_str)
        .map(str::to_string);
    let reason = output
        .and_then(|o| o.reason.clone().or_else(|| o.stop_reason.clone()))
        .or_else(|| {
            specific("permissionDecisionReason")
                .or_else(|| specific("decision").and_then(|d| d.get("message")))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .map(|t| r.text(&t));
    AuditKind::HookDecision {
        event,
        callback_id,
        tool,
        tool_use_id,
        continue_: output.and_then(|o| o.continue_),
        decision: output.and_then(|o| o.decision.clone()),
        permission_decision,
        reason,
        decided_by,
    }
}

/// The denial sent when the permission callback fails: the tool does not run.
fn fail_closed_permission(tool: &str, why: &str) -> PermissionResult {
    tracing::warn!(
        tool,
        error = why,
        "permission callback failed; denying the tool"
    );
    PermissionResult::deny(format!("{why}; the tool was not run"))
}

/// The denial sent when a gate hook fails: the tool does not run.
fn fail_closed_hook(event: &str, why: &str) -> HookOutput {
    tracing::warn!(event, error = why, "gate hook failed; denying the tool");
    let reason = format!("{why}; the tool was not run");
    if event == "PermissionRequest" {
        HookOutput::none().specific("decision", json!({"behavior": "deny", "message": reason}))
    } else {
        HookOutput::deny(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CanUseToolRequest, HookCallbackRequest};

    fn can_use_tool() -> InboundRequest {
        let req: CanUseToolRequest = serde_json::from_value(json!({
            "tool_name": "Bash", "input": {"command": "rm -rf /"}
        }))
        .expect("request");
        InboundRequest::CanUseTool(Box::new(req))
    }

    fn hook_call(event: &str) -> InboundRequest {
        let req: HookCallbackRequest = serde_json::from_value(json!({
            "callback_id": "hook_0",
            "input": {"hook_event_name": event, "tool_name": "Bash", "tool_input": {}}
        }))
        .expect("request");
        InboundRequest::HookCallback(req)
    }

    fn with_permission<F, Fut>(f: F) -> Callbacks
    where
        F: Fn(ToolPermissionRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = PermissionResult> + Send + 'static,
    {
        Callbacks {
            can_use_tool: Some(permissions::boxed(f)),
            ..Callbacks::default()
        }
    }

    fn with_hook<F, Fut>(event: hooks::HookEvent, f: F) -> Callbacks
    where
        F: Fn(HookInput) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = HookOutput> + Send + 'static,
    {
        Callbacks {
            hooks: vec![HookRegistration {
                event,
                matcher: None,
                timeout: Duration::from_secs(2),
                callback: hooks::boxed(f),
            }],
            ..Callbacks::default()
        }
    }

    const T: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn a_failing_permission_callback_denies() {
        let panics = with_permission(|_| async { panic!("callback bug") });
        let hangs = with_permission(|_| async {
            std::future::pending::<()>().await;
            PermissionResult::allow()
        });
        let garbage = with_permission(|_| async {
            PermissionResult::allow().updated_input(json!("not an object"))
        });
        for (callbacks, needle) in [
            (panics, "panicked: callback bug"),
            (hangs, "did not answer within 2s"),
            (garbage, "updated input must be a JSON object"),
        ] {
            let v = callbacks
                .answer(can_use_tool(), T, &AuditScope::default())
                .await
                .expect("answer");
            assert_eq!(v["behavior"], "deny", "{v}");
            let message = v["message"].as_str().unwrap_or_default();
            assert!(message.contains(needle), "{message}");
            assert!(message.contains("the tool was not run"), "{message}");
        }
        let none = Callbacks::default()
            .answer(can_use_tool(), T, &AuditScope::default())
            .await;
        assert_eq!(none.expect("answer")["behavior"], "deny");
    }

    /// An audit scope whose events land in the returned list.
    fn recording() -> (AuditScope, std::sync::Arc<std::sync::Mutex<Vec<AuditKind>>>) {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let sink: crate::audit::AuditSink =
            std::sync::Arc::new(move |e: &crate::audit::AuditEvent| {
                log.lock().expect("lock").push(e.kind.clone());
            });
        let config = crate::audit::AuditConfig {
            sink,
            redactor: Redactor::new(),
        };
        let scope = AuditScope {
            auditor: crate::audit::Auditor::start(Some(&config), Vec::new()),
            session_id: Some("s1".into()),
            context: None,
        };
        (scope, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn failing_permission_callbacks_are_audited_as_fail_closed_denials() {
        let panics = with_permission(|_| async { panic!("callback bug") });
        let hangs = with_permission(|_| async {
            std::future::pending::<()>().await;
            PermissionResult::allow()
        });
        let garbage = with_permission(|_| async {
            PermissionResult::allow().updated_input(json!("not an object"))
        });
        let (scope, seen) = recording();
        for callbacks in [panics, hangs, garbage, Callbacks::default()] {
            callbacks
                .answer(can_use_tool(), T, &scope)
                .await
                .expect("answer");
        }
        scope.auditor.close().await;
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 4, "{seen:?}");
        let mut failures = Vec::new();
        for kind in &seen {
            let AuditKind::PermissionDecision {
                tool,
                behavior,
                decided_by,
                input,
                message,
                ..
            } = kind
            else {
                panic!("{kind:?}");
            };
            assert_eq!(tool, "Bash");
            assert_eq!(*behavior, Behavior::Deny);
            assert_eq!(input["command"], "rm -rf /");
            assert!(message
                .as_deref()
                .is_some_and(|m| m.contains("the tool was not run")));
            failures.push(decided_by.clone());
        }
        let failed = |d: &DecidedBy, needle: &str| matches!(d, DecidedBy::CallbackFailed { failure } if failure.contains(needle));
        assert!(
            failed(&failures[0], "panicked: callback bug"),
            "{failures:?}"
        );
        assert!(
            failed(&failures[1], "did not answer within 2s"),
            "{failures:?}"
        );
        assert!(
            failed(&failures[2], "must be a JSON object"),
            "{failures:?}"
        );
        assert_eq!(failures[3], DecidedBy::NoCallback);
    }

    #[tokio::test(start_paused = true)]
    async fn hook_decisions_are_audited_with_their_reason_and_failures() {
        use hooks::HookEvent;
        let (scope, seen) = recording();
        let denies = with_hook(HookEvent::PreToolUse, |_| async {
            HookOutput::deny("not today")
        });
        denies
            .answer(hook_call("PreToolUse"), T, &scope)
            .await
            .expect("answer");
        let observer = with_hook(HookEvent::PostToolUse, |_| async { panic!("x") });
        let _ = observer.answer(hook_call("PostToolUse"), T, &scope).await;
        scope.auditor.close().await;
        let seen = seen.lock().expect("lock").clone();
        match &seen[..] {
            [AuditKind::HookDecision {
                event,
                callback_id,
                tool,
                permission_decision,
                reason,
                decided_by,
                ..
            }, AuditKind::HookDecision {
                event: e2,
                decided_by: d2,
                permission_decision: p2,
                ..
            }] => {
                assert_eq!(event, "PreToolUse");
                assert_eq!(callback_id, "hook_0");
                assert_eq!(tool.as_deref(), Some("Bash"));
                assert_eq!(permission_decision.as_deref(), Some("deny"));
                assert_eq!(reason.as_deref(), Some("not today"));
                assert_eq!(*decided_by, DecidedBy::Callback);
                assert_eq!(e2, "PostToolUse");
                assert!(p2.is_none());
                assert!(
                    matches!(d2, DecidedBy::CallbackFailed { failure } if failure.contains("panicked"))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_pre_tool_use_hook_denies_and_an_observer_hook_errors() {
        use hooks::HookEvent;
        let panics = with_hook(HookEvent::PreToolUse, |_| async { panic!("hook bug") });
        let v = panics
            .answer(hook_call("PreToolUse"), T, &AuditScope::default())
            .await
            .expect("answer");
        let specific = &v["hookSpecificOutput"];
        assert_eq!(specific["permissionDecision"], "deny", "{v}");
        assert!(specific["permissionDecisionReason"]
            .as_str()
            .is_some_and(|r| r.contains("panicked: hook bug")));

        let hangs = with_hook(HookEvent::PreToolUse, |_| async {
            std::future::pending::<HookOutput>().await
        });
        let v = hangs
            .answer(hook_call("PreToolUse"), T, &AuditScope::default())
            .await
            .expect("answer");
        assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");

        let garbage = with_hook(HookEvent::PreToolUse, |_| async {
            HookOutput::none().specific("permissionDecision", "maybe")
        });
        let v = garbage
            .answer(hook_call("PreToolUse"), T, &AuditScope::default())
            .await
            .expect("answer");
        assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");

        let permission = with_hook(HookEvent::PermissionRequest, |_| async { panic!("x") });
        let v = permission
            .answer(hook_call("PermissionRequest"), T, &AuditScope::default())
            .await
            .expect("answer");
        assert_eq!(v["hookSpecificOutput"]["decision"]["behavior"], "deny");

        let observer = with_hook(HookEvent::PostToolUse, |_| async { panic!("x") });
        let e = observer
            .answer(hook_call("PostToolUse"), T, &AuditScope::default())
            .await;
        assert!(e.is_err_and(|e| e.contains("panicked")));
    }

    #[tokio::test(start_paused = true)]
    async fn elicitation_without_a_callback_declines_and_a_failing_one_cancels() {
        let req = || InboundRequest::Unknown {
            subtype: "elicitation".into(),
            raw: json!({"subtype": "elicitation", "mcp_server_name": "s", "message": "name?"}),
        };
        let v = Callbacks::default()
            .answer(req(), T, &AuditScope::default())
            .await
            .expect("answer");
        assert_eq!(v, json!({"action": "decline"}));
        let failing = Callbacks {
            on_elicitation: Some(elicitation::boxed(|_| async { panic!("x") })),
            ..Callbacks::default()
        };
        assert_eq!(
            failing
                .answer(req(), T, &AuditScope::default())
                .await
                .expect("answer"),
            json!({"action": "cancel"})
        );
        let accepting = Callbacks {
            on_elicitation: Some(elicitation::boxed(|r: ElicitationRequest| async move {
                ElicitationResponse::Accept(json!({"name": r.message}))
            })),
            ..Callbacks::default()
        };
        assert_eq!(
            accepting
                .answer(req(), T, &AuditScope::default())
                .await
                .expect("answer"),
            json!({"action": "accept", "content": {"name": "name?"}})
        );
    }
}
