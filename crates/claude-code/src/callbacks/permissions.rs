//! The `can_use_tool` permission callback: what it receives, what it answers, and how
//! the answer is written on the wire. Dispatch lives in `callbacks`.

use std::{future::Future, sync::Arc};

use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::protocol::CanUseToolRequest;

/// A tool call the CLI asks permission for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolPermissionRequest {
    /// The tool (`Bash`, `Write`, `mcp__server__tool`, …).
    pub tool_name: String,
    /// The input the model gave it.
    pub input: Value,
    /// The tool use id.
    pub tool_use_id: Option<String>,
    /// Permission updates the CLI suggests (`PermissionUpdate` objects).
    pub suggestions: Vec<Value>,
    /// The path that triggered the check, for file tools.
    pub blocked_path: Option<String>,
    /// Why the CLI asks (e.g. a hook's reason).
    pub decision_reason: Option<String>,
    /// The subagent making the call, if any.
    pub agent_id: Option<String>,
}

impl From<CanUseToolRequest> for ToolPermissionRequest {
    fn from(r: CanUseToolRequest) -> Self {
        ToolPermissionRequest {
            tool_name: r.tool_name,
            input: r.input,
            tool_use_id: r.tool_use_id,
            suggestions: r.permission_suggestions.unwrap_or_default(),
            blocked_path: r.blocked_path,
            decision_reason: r.decision_reason,
            agent_id: r.agent_id,
        }
    }
}

/// The answer to a permission request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PermissionResult {
    /// Run the tool, optionally with a rewritten input and permission rule updates.
    Allow {
        /// Replaces the model's input when set.
        updated_input: Option<Value>,
        /// `PermissionUpdate` objects to apply (e.g. an allow rule for the session).
        updated_permissions: Vec<Value>,
    },
    /// Refuse the tool; the model sees `message` as an error tool result.
    Deny {
        /// Why (shown to the model).
        message: String,
        /// Also abort the whole turn.
        interrupt: bool,
    },
}

impl PermissionResult {
    /// Allow the call as the model made it.
    pub fn allow() -> Self {
        PermissionResult::Allow {
            updated_input: None,
            updated_permissions: Vec::new(),
        }
    }

    /// Refuse the call with this message for the model.
    pub fn deny(message: impl Into<String>) -> Self {
        PermissionResult::Deny {
            message: message.into(),
            interrupt: false,
        }
    }

    /// Allow with this input instead of the model's (no effect on a deny).
    #[must_use]
    pub fn updated_input(mut self, input: Value) -> Self {
        if let PermissionResult::Allow { updated_input, .. } = &mut self {
            *updated_input = Some(input);
        }
        self
    }

    /// Add a permission update (no effect on a deny), e.g. a rule for the rest of the
    /// session: `{"type":"addRules","rules":[{"toolName":"Bash","ruleContent":"make"}],
    /// "behavior":"allow","destination":"session"}`.
    #[must_use]
    pub fn with_permission_update(mut self, update: Value) -> Self {
        if let PermissionResult::Allow {
            updated_permissions,
            ..
        } = &mut self
        {
            updated_permissions.push(update);
        }
        self
    }

    /// On a deny, also interrupt the turn.
    #[must_use]
    pub fn and_interrupt(mut self) -> Self {
        if let PermissionResult::Deny { interrupt, .. } = &mut self {
            *interrupt = true;
        }
        self
    }

    /// The control response payload. An allow always carries `updatedInput` (the
    /// original input when unchanged), which every CLI version accepts.
    /// Rejects an answer the CLI could not apply as meant (the caller then denies).
    pub(crate) fn check(&self) -> Result<(), String> {
        match self {
            PermissionResult::Allow {
                updated_input: Some(input),
                ..
            } if !input.is_object() => Err(format!(
                "the permission callback's updated input must be a JSON object, got {}",
                kind_of(input)
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn to_wire(&self, original_input: &Value) -> Value {
        match self {
            PermissionResult::Allow {
                updated_input,
                updated_permissions,
            } => {
                let mut v = json!({
                    "behavior": "allow",
                    "updatedInput": updated_input.as_ref().unwrap_or(original_input),
                });
                if !updated_permissions.is_empty() {
                    v["updatedPermissions"] = Value::Array(updated_permissions.clone());
                }
                v
            }
            PermissionResult::Deny { message, interrupt } => {
                json!({"behavior": "deny", "message": message, "interrupt": interrupt})
            }
        }
    }
}

/// A short name for a JSON value's kind, for error messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The stored permission callback.
pub(crate) type CanUseToolFn =
    Arc<dyn Fn(ToolPermissionRequest) -> BoxFuture<'static, PermissionResult> + Send + Sync>;

/// Boxes a user closure into a [`CanUseToolFn`].
pub(crate) fn boxed<F, Fut>(f: F) -> CanUseToolFn
where
    F: Fn(ToolPermissionRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = PermissionResult> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_sends_the_original_input_when_unchanged() {
        let input = json!({"command": "ls"});
        assert_eq!(
            PermissionResult::allow().to_wire(&input),
            json!({"behavior": "allow", "updatedInput": {"command": "ls"}})
        );
    }

    #[test]
    fn allow_with_rewritten_input_and_rule() {
        let v = PermissionResult::allow()
            .updated_input(json!({"command": "ls -a"}))
            .with_permission_update(json!({"type": "addRules"}))
            .to_wire(&json!({}));
        assert_eq!(v["updatedInput"]["command"], "ls -a");
        assert_eq!(v["updatedPermissions"][0]["type"], "addRules");
    }

    #[test]
    fn deny_with_interrupt() {
        assert_eq!(
            PermissionResult::deny("no")
                .and_interrupt()
                .to_wire(&json!({})),
            json!({"behavior": "deny", "message": "no", "interrupt": true})
        );
    }
}
