//! Hook callbacks: events, matchers, typed inputs and outputs, and the `initialize`
//! registration. Dispatch of `hook_callback` requests lives in `callbacks`.

use std::{future::Future, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// A hook event the CLI can call back on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HookEvent {
    /// Before a tool runs (can allow, deny, ask, or rewrite the input).
    PreToolUse,
    /// After a tool ran.
    PostToolUse,
    /// After a tool failed.
    PostToolUseFailure,
    /// When a prompt is submitted.
    UserPromptSubmit,
    /// When the agent is about to stop.
    Stop,
    /// When a subagent starts.
    SubagentStart,
    /// When a subagent stops.
    SubagentStop,
    /// Before compaction.
    PreCompact,
    /// A notification.
    Notification,
    /// Session start.
    SessionStart,
    /// Session end.
    SessionEnd,
    /// A permission dialog would be shown.
    PermissionRequest,
    /// Any other event name the CLI supports.
    Other(String),
}

impl HookEvent {
    /// The event's wire name.
    pub fn as_str(&self) -> &str {
        match self {
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PostToolUse => "PostToolUse",
            HookEvent::PostToolUseFailure => "PostToolUseFailure",
            HookEvent::UserPromptSubmit => "UserPromptSubmit",
            HookEvent::Stop => "Stop",
            HookEvent::SubagentStart => "SubagentStart",
            HookEvent::SubagentStop => "SubagentStop",
            HookEvent::PreCompact => "PreCompact",
            HookEvent::Notification => "Notification",
            HookEvent::SessionStart => "SessionStart",
            HookEvent::SessionEnd => "SessionEnd",
            HookEvent::PermissionRequest => "PermissionRequest",
            HookEvent::Other(name) => name,
        }
    }
}

/// What a hook callback receives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HookInput {
    /// The event (`hook_event_name`).
    pub event: String,
    /// The tool, for tool events.
    pub tool_name: Option<String>,
    /// The tool input, for tool events.
    pub tool_input: Option<Value>,
    /// The tool use id, for tool events.
    pub tool_use_id: Option<String>,
    /// The conversation id.
    pub session_id: Option<String>,
    /// The CLI's working directory.
    pub cwd: Option<String>,
    /// The conversation's transcript file.
    pub transcript_path: Option<String>,
    /// The permission mode in force.
    pub permission_mode: Option<String>,
    /// The whole input object as the CLI sent it (session id, cwd, tool response, …).
    pub raw: Value,
}

impl HookInput {
    pub(crate) fn from_wire(raw: Value, tool_use_id: Option<String>) -> Self {
        let str_field = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        HookInput {
            event: str_field("hook_event_name").unwrap_or_default(),
            tool_name: str_field("tool_name"),
            tool_input: raw.get("tool_input").cloned(),
            tool_use_id: tool_use_id.or_else(|| str_field("tool_use_id")),
            session_id: str_field("session_id"),
            cwd: str_field("cwd"),
            transcript_path: str_field("transcript_path"),
            permission_mode: str_field("permission_mode"),
            raw,
        }
    }

    /// The event's own fields, typed (the raw JSON stays in [`HookInput::raw`]). Fields
    /// the CLI leaves out take their defaults; an event this SDK does not type is
    /// [`HookEventInput::Other`]. Errs only when a field has the wrong JSON type.
    pub fn typed(&self) -> Result<HookEventInput, serde_json::Error> {
        HookEventInput::deserialize(&self.raw)
    }
}

/// The fields of each hook event, as the CLI sends them (see [`HookInput::typed`]).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "hook_event_name")]
#[non_exhaustive]
pub enum HookEventInput {
    /// Before a tool runs.
    PreToolUse {
        /// The tool.
        #[serde(default)]
        tool_name: String,
        /// The model's input for it.
        #[serde(default)]
        tool_input: Value,
        /// The tool use id.
        #[serde(default)]
        tool_use_id: Option<String>,
    },
    /// After a tool ran.
    PostToolUse {
        /// The tool.
        #[serde(default)]
        tool_name: String,
        /// Its input.
        #[serde(default)]
        tool_input: Value,
        /// What it returned.
        #[serde(default)]
        tool_response: Value,
        /// The tool use id.
        #[serde(default)]
        tool_use_id: Option<String>,
    },
    /// After a tool failed.
    PostToolUseFailure {
        /// The tool.
        #[serde(default)]
        tool_name: String,
        /// Its input.
        #[serde(default)]
        tool_input: Value,
        /// The tool use id.
        #[serde(default)]
        tool_use_id: Option<String>,
        /// The error.
        #[serde(default)]
        error: Option<String>,
        /// Whether the failure was an interrupt.
        #[serde(default)]
        is_interrupt: Option<bool>,
    },
    /// A prompt was submitted.
    UserPromptSubmit {
        /// The prompt's text.
        #[serde(default)]
        prompt: String,
    },
    /// The agent is about to stop.
    Stop {
        /// True when a Stop hook already made the agent continue once.
        #[serde(default)]
        stop_hook_active: bool,
        /// The last assistant message, when the CLI sends it.
        #[serde(default)]
        last_assistant_message: Option<Value>,
    },
    /// A subagent started.
    SubagentStart {
        /// The subagent's id.
        #[serde(default)]
        agent_id: Option<String>,
        /// Its type.
        #[serde(default)]
        agent_type: Option<String>,
    },
    /// A subagent is about to stop.
    SubagentStop {
        /// As for `Stop`.
        #[serde(default)]
        stop_hook_active: bool,
        /// The subagent's id.
        #[serde(default)]
        agent_id: Option<String>,
        /// Its type.
        #[serde(default)]
        agent_type: Option<String>,
        /// Its transcript.
        #[serde(default)]
        agent_transcript_path: Option<String>,
    },
    /// Before compaction.
    PreCompact {
        /// `manual` or `auto`.
        #[serde(default)]
        trigger: String,
        /// Instructions given to `/compact`.
        #[serde(default)]
        custom_instructions: Option<String>,
    },
    /// A notification.
    Notification {
        /// Its text.
        #[serde(default)]
        message: String,
        /// Its title.
        #[serde(default)]
        title: Option<String>,
        /// Its kind.
        #[serde(default)]
        notification_type: Option<String>,
    },
    /// A permission dialog would be shown.
    PermissionRequest {
        /// The tool.
        #[serde(default)]
        tool_name: String,
        /// Its input.
        #[serde(default)]
        tool_input: Value,
        /// Suggested permission updates.
        #[serde(default)]
        permission_suggestions: Vec<Value>,
    },
    /// The session started.
    SessionStart {
        /// `startup`, `resume`, `clear`, `compact` or `fork`.
        #[serde(default)]
        source: String,
        /// The model, when sent.
        #[serde(default)]
        model: Option<String>,
    },
    /// The session ends.
    SessionEnd {
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Any other event (read [`HookInput::raw`]).
    #[serde(other)]
    Other,
}

/// What a hook callback answers. The default ([`HookOutput::none`]) has no opinion.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct HookOutput {
    /// `Some(false)` stops the agent after this hook.
    pub continue_: Option<bool>,
    /// Shown when `continue_` is false.
    pub stop_reason: Option<String>,
    /// `"block"` to block (Stop, PostToolUse, UserPromptSubmit, …).
    pub decision: Option<String>,
    /// Reason for the decision, fed to the model.
    pub reason: Option<String>,
    /// A warning shown to the user.
    pub system_message: Option<String>,
    /// Hide the hook's output from the transcript.
    pub suppress_output: Option<bool>,
    /// Event-specific fields (`permissionDecision`, `additionalContext`, `updatedInput`, …),
    /// without `hookEventName` (added from the event being answered).
    pub specific: Map<String, Value>,
}

impl HookOutput {
    /// No opinion: the CLI carries on as it would without the hook.
    pub fn none() -> Self {
        Self::default()
    }

    /// PreToolUse: allow the tool without asking.
    pub fn allow() -> Self {
        Self::none().specific("permissionDecision", "allow")
    }

    /// PreToolUse: deny the tool; `reason` is shown to the model.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::none()
            .specific("permissionDecision", "deny")
            .specific("permissionDecisionReason", reason.into())
    }

    /// PreToolUse: ask (the permission callback or the mode decides).
    pub fn ask(reason: impl Into<String>) -> Self {
        Self::none()
            .specific("permissionDecision", "ask")
            .specific("permissionDecisionReason", reason.into())
    }

    /// Block (`decision: "block"`) with a reason for the model.
    pub fn block(reason: impl Into<String>) -> Self {
        HookOutput {
            decision: Some("block".into()),
            reason: Some(reason.into()),
            ..Self::none()
        }
    }

    /// Stop the agent (`continue: false`).
    pub fn stop(reason: impl Into<String>) -> Self {
        HookOutput {
            continue_: Some(false),
            stop_reason: Some(reason.into()),
            ..Self::none()
        }
    }

    /// Extra context for the model (`additionalContext`).
    #[must_use]
    pub fn additional_context(self, text: impl Into<String>) -> Self {
        self.specific("additionalContext", text.into())
    }

    /// PreToolUse: run the tool with this input instead.
    #[must_use]
    pub fn updated_input(self, input: Value) -> Self {
        self.specific("updatedInput", input)
    }

    /// A warning shown to the user.
    #[must_use]
    pub fn system_message(mut self, text: impl Into<String>) -> Self {
        self.system_message = Some(text.into());
        self
    }

    /// Sets one event-specific field.
    #[must_use]
    pub fn specific(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.specific.insert(key.to_string(), value.into());
        self
    }

    /// Rejects an answer that makes no sense for `event` (a gate hook then denies).
    pub(crate) fn check(&self, event: &str) -> Result<(), String> {
        if event == "PreToolUse" {
            if let Some(d) = self.specific.get("permissionDecision") {
                if !matches!(d.as_str(), Some("allow" | "deny" | "ask" | "defer")) {
                    return Err(format!(
                        "the PreToolUse hook answered permissionDecision {d}, not allow, deny, ask or defer"
                    ));
                }
            }
            if let Some(input) = self.specific.get("updatedInput") {
                if !input.is_object() {
                    return Err(format!(
                        "the PreToolUse hook's updatedInput must be a JSON object, got {}",
                        super::permissions::kind_of(input)
                    ));
                }
            }
        }
        if event == "PermissionRequest" {
            if let Some(d) = self.specific.get("decision") {
                if !matches!(
                    d.get("behavior").and_then(Value::as_str),
                    Some("allow" | "deny")
                ) {
                    return Err(format!(
                        "the PermissionRequest hook answered decision {d}, whose behavior is not allow or deny"
                    ));
                }
            }
        }
        if let Some(d) = &self.decision {
            if !matches!(d.as_str(), "block" | "approve") {
                return Err(format!(
                    "the {event} hook answered decision {d:?}, not \"block\""
                ));
            }
        }
        Ok(())
    }

    /// The wire payload for an answer to `event`.
    pub(crate) fn to_wire(&self, event: &str) -> Value {
        let mut v = Map::new();
        let mut put = |k: &str, val: Option<Value>| {
            if let Some(val) = val {
                v.insert(k.to_string(), val);
            }
        };
        put("continue", self.continue_.map(Value::Bool));
        put("stopReason", self.stop_reason.clone().map(Value::String));
        put("decision", self.decision.clone().map(Value::String));
        put("reason", self.reason.clone().map(Value::String));
        put(
            "systemMessage",
            self.system_message.clone().map(Value::String),
        );
        put("suppressOutput", self.suppress_output.map(Value::Bool));
        if !self.specific.is_empty() {
            let mut specific = self.specific.clone();
            specific.insert("hookEventName".into(), json!(event));
            v.insert("hookSpecificOutput".into(), Value::Object(specific));
        }
        Value::Object(v)
    }
}

/// The stored hook callback.
pub(crate) type HookFn = Arc<dyn Fn(HookInput) -> BoxFuture<'static, HookOutput> + Send + Sync>;

/// One registered hook: event, tool-name matcher, timeout, callback.
#[derive(Clone)]
pub(crate) struct HookRegistration {
    pub(crate) event: HookEvent,
    pub(crate) matcher: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) callback: HookFn,
}

impl std::fmt::Debug for HookRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("event", &self.event)
            .field("matcher", &self.matcher)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Boxes a user closure into a [`HookFn`].
pub(crate) fn boxed<F, Fut>(f: F) -> HookFn
where
    F: Fn(HookInput) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HookOutput> + Send + 'static,
{
    Arc::new(move |input| Box::pin(f(input)))
}

/// Whether a failing hook on `event` must deny the tool (the hook is a gate).
pub(crate) fn is_gate(event: &str) -> bool {
    matches!(event, "PreToolUse" | "PermissionRequest")
}

/// Extra time the CLI waits for a hook beyond the SDK's own timeout, so that the SDK's
/// fail-closed answer, not the CLI's timeout, decides.
const CLI_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// The callback id of the hook at `index` in registration order.
pub(crate) fn callback_id(index: usize) -> String {
    format!("hook_{index}")
}

/// The `initialize.hooks` object: `{Event: [{matcher, hookCallbackIds, timeout}]}`.
pub(crate) fn initialize_config(hooks: &[HookRegistration]) -> Option<Value> {
    if hooks.is_empty() {
        return None;
    }
    let mut config = Map::new();
    for (i, h) in hooks.iter().enumerate() {
        let mut entry = json!({
            "matcher": h.matcher,
            "hookCallbackIds": [callback_id(i)],
            "timeout": (h.timeout + CLI_TIMEOUT_MARGIN).as_secs_f64().ceil() as u64,
        });
        if is_gate(h.event.as_str()) {
            // Should the SDK's answer never arrive, the CLI blocks rather than runs.
            entry["onFailure"] = json!("block");
        }
        match config
            .entry(h.event.as_str().to_string())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(list) => list.push(entry),
            other => *other = Value::Array(vec![entry]),
        }
    }
    Some(Value::Object(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_output_carries_the_event_name() {
        assert_eq!(
            HookOutput::deny("not here").to_wire("PreToolUse"),
            json!({"hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": "not here"
            }})
        );
    }

    #[test]
    fn hook_inputs_are_typed_per_event_and_keep_the_raw_json() {
        let input = HookInput::from_wire(
            json!({"hook_event_name": "PostToolUse", "session_id": "s1", "cwd": "/w",
                "tool_name": "Bash", "tool_input": {"command": "ls"},
                "tool_response": {"stdout": "a"}, "new_field": 1}),
            Some("toolu_1".into()),
        );
        assert_eq!(input.session_id.as_deref(), Some("s1"));
        match input.typed().expect("typed") {
            HookEventInput::PostToolUse {
                tool_name,
                tool_response,
                ..
            } => {
                assert_eq!(tool_name, "Bash");
                assert_eq!(tool_response["stdout"], "a");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(input.raw["new_field"], 1);
        let other = HookInput::from_wire(json!({"hook_event_name": "CwdChanged"}), None);
        assert_eq!(other.typed().expect("typed"), HookEventInput::Other);
        let prompt = HookInput::from_wire(json!({"hook_event_name": "UserPromptSubmit"}), None);
        assert_eq!(
            prompt.typed().expect("typed"),
            HookEventInput::UserPromptSubmit {
                prompt: String::new()
            }
        );
        let bad = HookInput::from_wire(
            json!({"hook_event_name": "Stop", "stop_hook_active": "yes"}),
            None,
        );
        assert!(bad.typed().is_err());
    }

    #[test]
    fn no_opinion_is_an_empty_object() {
        assert_eq!(HookOutput::none().to_wire("Stop"), json!({}));
    }

    #[test]
    fn stop_and_block_use_wire_spellings() {
        assert_eq!(
            HookOutput::stop("enough").to_wire("Stop"),
            json!({"continue": false, "stopReason": "enough"})
        );
        assert_eq!(
            HookOutput::block("no")
                .system_message("warn")
                .to_wire("Stop"),
            json!({"decision": "block", "reason": "no", "systemMessage": "warn"})
        );
    }

    #[test]
    fn initialize_config_groups_by_event_with_ids_in_order() {
        let cb = boxed(|_| async { HookOutput::none() });
        let reg = |event, matcher: Option<&str>| HookRegistration {
            event,
            matcher: matcher.map(str::to_string),
            timeout: Duration::from_secs(30),
            callback: cb.clone(),
        };
        let v = initialize_config(&[
            reg(HookEvent::PreToolUse, Some("Bash")),
            reg(HookEvent::PostToolUse, None),
            reg(HookEvent::PreToolUse, None),
        ])
        .expect("config");
        assert_eq!(
            v,
            json!({
                "PreToolUse": [
                    {"matcher": "Bash", "hookCallbackIds": ["hook_0"], "timeout": 35, "onFailure": "block"},
                    {"matcher": null, "hookCallbackIds": ["hook_2"], "timeout": 35, "onFailure": "block"}
                ],
                "PostToolUse": [{"matcher": null, "hookCallbackIds": ["hook_1"], "timeout": 35}]
            })
        );
    }
}
