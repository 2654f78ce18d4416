//! Typed values of CLI options that are more than a string or a number: tool sets,
//! thinking, effort, setting sources, external MCP servers, agents, sandbox settings.
//! How they become flags is `args`' business.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The base tool set (`--tools`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tools {
    /// Claude Code's default tools.
    Default,
    /// No built-in tools at all (MCP tools still work).
    None,
    /// Exactly these tools.
    List(Vec<String>),
}

/// Extended thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Thinking {
    /// The model decides how much to think (`--thinking adaptive`).
    Adaptive,
    /// No thinking (`--thinking disabled`).
    Disabled,
    /// Thinking with this token budget (`--max-thinking-tokens`).
    Budget(u32),
}

/// A string that is not one of an enum's spellings (`"acceptedits"` for a
/// [`PermissionMode`](crate::PermissionMode), …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{got:?} is not a valid {what}; expected one of: {expected}")]
pub struct ParseEnumError {
    /// What was parsed (`permission mode`, …).
    pub what: &'static str,
    /// The string given.
    pub got: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

/// `as_str`, `Display`, `FromStr` and `ALL` for a plain enum with one wire spelling per
/// variant: each enum is spelled in one place.
macro_rules! spelled {
    ($ty:ident, $what:literal, { $($variant:ident => $wire:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The CLI's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $wire),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::options::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    $crate::options::ParseEnumError {
                        what: $what,
                        got: s.to_string(),
                        expected: Self::ALL
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })
            }
        }
    };
}
pub(crate) use spelled;

/// Reasoning effort (`--effort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effort {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Extra high.
    XHigh,
    /// Maximum.
    Max,
}

spelled!(Effort, "effort", {
    Low => "low",
    Medium => "medium",
    High => "high",
    XHigh => "xhigh",
    Max => "max",
});

/// Where the CLI loads filesystem settings from (`--setting-sources`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingSource {
    /// `~/.claude/settings.json`.
    User,
    /// `.claude/settings.json` in the project.
    Project,
    /// `.claude/settings.local.json` in the project.
    Local,
}

spelled!(SettingSource, "setting source", {
    User => "user",
    Project => "project",
    Local => "local",
});

/// Settings for the CLI (`--settings`): a file, or a JSON object.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Settings {
    /// A settings file.
    Path(PathBuf),
    /// Settings given inline.
    Json(Value),
}

/// Sandbox settings, merged into the `--settings` JSON as `sandbox`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SandboxSettings {
    /// Run Bash in the sandbox.
    pub enabled: bool,
    /// Allow sandboxed Bash without asking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_allow_bash_if_sandboxed: Option<bool>,
    /// Commands that run outside the sandbox.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub excluded_commands: Vec<String>,
    /// Let the model ask to run a command unsandboxed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_unsandboxed_commands: Option<bool>,
    /// Network settings, as the CLI documents them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Value>,
}

impl SandboxSettings {
    /// Sandboxing on, everything else default.
    pub fn enabled() -> Self {
        SandboxSettings {
            enabled: true,
            ..Self::default()
        }
    }
}

/// An external MCP server the CLI connects to (`--mcp-config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum McpServerConfig {
    /// A server the CLI spawns and talks to over stdio.
    Stdio {
        /// The program.
        command: String,
        /// Its arguments.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Extra environment.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
    /// A streamable-HTTP server.
    Http {
        /// Its URL.
        url: String,
        /// Extra request headers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// A server-sent-events server.
    Sse {
        /// Its URL.
        url: String,
        /// Extra request headers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

impl McpServerConfig {
    /// A stdio server: `command args…`.
    pub fn stdio<I, S>(command: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        McpServerConfig::Stdio {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: BTreeMap::new(),
        }
    }

    /// An HTTP server at `url`.
    pub fn http(url: impl Into<String>) -> Self {
        McpServerConfig::Http {
            url: url.into(),
            headers: BTreeMap::new(),
        }
    }

    /// An SSE server at `url`.
    pub fn sse(url: impl Into<String>) -> Self {
        McpServerConfig::Sse {
            url: url.into(),
            headers: BTreeMap::new(),
        }
    }
}

/// A subagent definition, sent in the `initialize` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AgentDefinition {
    /// When to use the agent (the model reads this).
    pub description: String,
    /// The agent's system prompt.
    pub prompt: String,
    /// Tools it may use (default: inherit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Tools it may not use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disallowed_tools: Option<Vec<String>>,
    /// Model alias (`sonnet`, `opus`, `haiku`, `inherit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Most model round-trips.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
}

impl AgentDefinition {
    /// An agent with a description and a prompt.
    pub fn new(description: impl Into<String>, prompt: impl Into<String>) -> Self {
        AgentDefinition {
            description: description.into(),
            prompt: prompt.into(),
            tools: None,
            disallowed_tools: None,
            model: None,
            max_turns: None,
        }
    }

    /// Restricts the agent's tools.
    #[must_use]
    pub fn tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the agent's model.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }
}
