//! [`UserInput`]: a user turn the SDK writes to the CLI's stdin. Writing the line to the
//! process is the transport's job.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::content::{ContentBlock, UserContent};
use super::wire;

/// A user message for the CLI's stdin:
/// `{"type":"user","message":{"role":"user","content":…},"parent_tool_use_id":null,"session_id":"default"}`.
///
/// The CLI ignores `session_id` (it uses its own). Each input starts a new turn.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UserInput {
    /// A string or content blocks.
    pub content: UserContent,
    /// The subagent tool use this answers, if any (normally `None`, written as `null`).
    pub parent_tool_use_id: Option<String>,
    /// Written as given; the CLI ignores it. Default `"default"`.
    pub session_id: String,
    /// An id for the message (optional).
    pub uuid: Option<String>,
    /// Other top-level fields (`priority`, `shouldQuery`, `isSynthetic`, …).
    pub extra: Map<String, Value>,
    /// The turn's audit context (never sent to the CLI): see
    /// [`UserInput::with_audit_context`].
    pub(crate) audit_context: Option<String>,
}

impl UserInput {
    /// A text prompt.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(UserContent::Text(text.into()))
    }

    /// A prompt made of content blocks (text, images, documents, …).
    pub fn blocks(blocks: impl IntoIterator<Item = ContentBlock>) -> Self {
        Self::new(UserContent::Blocks(blocks.into_iter().collect()))
    }

    fn new(content: UserContent) -> Self {
        UserInput {
            content,
            parent_tool_use_id: None,
            session_id: "default".to_owned(),
            uuid: None,
            extra: Map::new(),
            audit_context: None,
        }
    }

    /// Sets the message id (a UUID); [`Session::rewind_files`](crate::Session::rewind_files)
    /// rewinds to a message named this way.
    #[must_use]
    pub fn with_uuid(mut self, uuid: impl Into<String>) -> Self {
        self.uuid = Some(uuid.into());
        self
    }

    /// Sets `parent_tool_use_id`.
    #[must_use]
    pub fn with_parent_tool_use_id(mut self, id: impl Into<String>) -> Self {
        self.parent_tool_use_id = Some(id.into());
        self
    }

    /// Sets `session_id`.
    #[must_use]
    pub fn with_session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = id.into();
        self
    }

    /// Tags the turn for the audit trail: every [`AuditEvent`](crate::audit::AuditEvent)
    /// raised while this turn runs carries `context` (e.g. the tenant that asked, on a
    /// session shared by several). Never written to the CLI.
    #[must_use]
    pub fn with_audit_context(mut self, context: impl Into<String>) -> Self {
        self.audit_context = Some(context.into());
        self
    }

    /// The turn's audit context, if set.
    pub fn audit_context(&self) -> Option<&str> {
        self.audit_context.as_deref()
    }

    /// Sets any other top-level field (e.g. `priority`, `shouldQuery`).
    #[must_use]
    pub fn with_field(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// The NDJSON line for stdin (with the trailing newline).
    pub fn to_line(&self) -> String {
        wire::to_line(self)
    }
}

impl From<&str> for UserInput {
    fn from(s: &str) -> Self {
        UserInput::text(s)
    }
}

impl From<String> for UserInput {
    fn from(s: String) -> Self {
        UserInput::text(s)
    }
}

impl From<&String> for UserInput {
    fn from(s: &String) -> Self {
        UserInput::text(s.clone())
    }
}

impl From<Vec<ContentBlock>> for UserInput {
    fn from(blocks: Vec<ContentBlock>) -> Self {
        UserInput::blocks(blocks)
    }
}

impl From<UserContent> for UserInput {
    fn from(content: UserContent) -> Self {
        UserInput::new(content)
    }
}

struct Body<'a>(&'a UserContent);

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("role", "user")?;
        m.serialize_entry("content", self.0)?;
        m.end()
    }
}

impl Serialize for UserInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "user")?;
        m.serialize_entry("message", &Body(&self.content))?;
        m.serialize_entry("parent_tool_use_id", &self.parent_tool_use_id)?;
        m.serialize_entry("session_id", &self.session_id)?;
        if let Some(uuid) = &self.uuid {
            m.serialize_entry("uuid", uuid)?;
        }
        for (k, v) in &self.extra {
            if !matches!(
                k.as_str(),
                "type" | "message" | "parent_tool_use_id" | "session_id" | "uuid"
            ) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for UserInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut obj = Map::<String, Value>::deserialize(d)?;
        obj.remove("type");
        let content = match obj.remove("message") {
            Some(Value::Object(mut message)) => match message.remove("content") {
                Some(c) => UserContent::deserialize(c).map_err(serde::de::Error::custom)?,
                None => UserContent::default(),
            },
            _ => UserContent::default(),
        };
        let parent_tool_use_id = match obj.remove("parent_tool_use_id") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let session_id = match obj.remove("session_id") {
            Some(Value::String(s)) => s,
            _ => "default".to_owned(),
        };
        let uuid = match obj.remove("uuid") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(UserInput {
            content,
            parent_tool_use_id,
            session_id,
            uuid,
            extra: obj,
            audit_context: None,
        })
    }
}
