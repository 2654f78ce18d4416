//! The host's tool policy: a small declarative allow/deny list per session, pool or
//! template, decided in the session's permission callback (`can_use_tool`), so that each
//! decision is made by the host, shown to the model and recorded in the audit trail.
//!
//! The CLI asks the callback only about the calls its permission mode and rules leave
//! open: in the default mode, tools that change things (`Bash`, `Write`, `Edit`, …) and
//! MCP tools; read-only tools and tools pre-approved with `allowed_tools` run without
//! asking, and `bypassPermissions` asks about nothing. `disallowed_tools` (a CLI flag)
//! removes a tool from the model's view altogether; `deny_tools` leaves it visible and
//! refuses each call, with a reason the model reads and an audited decision.
//!
//! Rules: a call whose tool matches `deny_tools` is denied; otherwise, when
//! `allow_tools` is empty or matches, it is allowed; otherwise denied. A pattern is a
//! tool name (`Bash`) or a prefix ending in `*` (`mcp__github__*`).
//!
//! ```
//! use claude_code_serve::ToolPolicy;
//! let policy = ToolPolicy::new().deny(["Bash"]).allow(["Write", "mcp__docs__*"]);
//! assert!(policy.allows("Write") && policy.allows("mcp__docs__search"));
//! assert!(!policy.allows("Bash") && !policy.allows("WebFetch"));
//! let options = policy.apply(claude_code::Options::new());
//! ```

use claude_code::{Options, PermissionResult};

/// A session's tool policy (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolPolicy {
    /// Tools that may run (empty: every tool not denied).
    pub allow_tools: Vec<String>,
    /// Tools that never run.
    pub deny_tools: Vec<String>,
}

impl ToolPolicy {
    /// A policy that allows everything (until tools are denied or an allow list is set).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds patterns to the allow list.
    #[must_use]
    pub fn allow<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allow_tools.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Adds patterns to the deny list.
    #[must_use]
    pub fn deny<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.deny_tools.extend(tools.into_iter().map(Into::into));
        self
    }

    /// Whether neither list is set (then [`ToolPolicy::apply`] changes nothing).
    pub fn is_empty(&self) -> bool {
        self.allow_tools.is_empty() && self.deny_tools.is_empty()
    }

    /// Whether a call of `tool` may run.
    pub fn allows(&self, tool: &str) -> bool {
        matches!(self.decide(tool), PermissionResult::Allow { .. })
    }

    /// The decision for a call of `tool`; a denial says which rule refused it.
    pub fn decide(&self, tool: &str) -> PermissionResult {
        if let Some(rule) = self.deny_tools.iter().find(|p| matches(p, tool)) {
            return PermissionResult::deny(format!(
                "the host's tool policy denies {tool} (deny_tools: {rule})"
            ));
        }
        if self.allow_tools.is_empty() || self.allow_tools.iter().any(|p| matches(p, tool)) {
            return PermissionResult::allow();
        }
        PermissionResult::deny(format!(
            "the host's tool policy does not allow {tool} (allow_tools: {})",
            self.allow_tools.join(", ")
        ))
    }

    /// `options` with this policy as the permission callback (unchanged when the policy
    /// is empty). It replaces any permission callback set before.
    pub fn apply(self, options: Options) -> Options {
        if self.is_empty() {
            return options;
        }
        options.can_use_tool(move |req| {
            let decision = self.decide(&req.tool_name);
            async move { decision }
        })
    }
}

/// Whether `pattern` (a name, or a prefix ending in `*`) matches `tool`.
fn matches(pattern: &str, tool: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => tool.starts_with(prefix),
        None => pattern == tool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_then_the_allow_list_decides() {
        let p = ToolPolicy::new()
            .deny(["Bash", "mcp__x__*"])
            .allow(["Bash", "Write"]);
        match p.decide("Bash") {
            PermissionResult::Deny { message, .. } => {
                assert!(message.contains("deny_tools: Bash"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(!p.allows("mcp__x__y"));
        assert!(p.allows("Write"));
        match p.decide("Edit") {
            PermissionResult::Deny { message, .. } => {
                assert!(message.contains("allow_tools: Bash, Write"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let deny_only = ToolPolicy::new().deny(["Bash"]);
        assert!(deny_only.allows("Edit") && !deny_only.allows("Bash"));
        assert!(ToolPolicy::new().is_empty());
        assert!(!matches("Bas", "Bash") && matches("B*", "Bash"));
    }
}
