//! Content blocks of Messages API messages (`text`, `thinking`, `tool_use`,
//! `tool_result`, …) and the string-or-blocks content of user messages. Unknown block
//! types land in [`ContentBlock::Unknown`]; every known block keeps unknown fields in its
//! `extra`. The messages that carry blocks live in `message.rs`.

use serde::de::MapAccess;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use super::wire::{self, finish, whole_object, wire_struct, Prefix, Slot, Tagged, WireValue};

wire_struct! {
    /// A `text` block.
    pub struct TextBlock : "type" = "text", always = true {
        /// The text.
        def "text" text: String,
        /// Citations, when the model cited documents.
        opt "citations" citations: Option<Value>,
    }
}

wire_struct! {
    /// A `thinking` block (extended thinking).
    pub struct ThinkingBlock : "type" = "thinking", always = true {
        /// The thinking text.
        def "thinking" thinking: String,
        /// The signature the API uses to verify the block when it is sent back.
        def "signature" signature: String,
    }
}

wire_struct! {
    /// A `redacted_thinking` block: encrypted thinking.
    pub struct RedactedThinkingBlock : "type" = "redacted_thinking", always = true {
        /// The opaque payload.
        def "data" data: String,
    }
}

wire_struct! {
    /// A `tool_use` block: the model calls a tool the CLI runs.
    pub struct ToolUseBlock : "type" = "tool_use", always = true {
        /// The tool use id (`toolu_…`), which the matching `tool_result` refers to.
        def "id" id: String,
        /// The tool name (`Bash`, `Write`, `mcp__server__tool`, …).
        def "name" name: String,
        /// The tool input, as the model wrote it.
        def "input" input: Value,
    }
}

wire_struct! {
    /// A `server_tool_use` block: a tool run by the API itself (web search, …).
    pub struct ServerToolUseBlock : "type" = "server_tool_use", always = true {
        /// The tool use id (`srvtoolu_…`).
        def "id" id: String,
        /// The server tool name (`web_search`, …).
        def "name" name: String,
        /// The tool input.
        def "input" input: Value,
    }
}

wire_struct! {
    /// A `tool_result` block: the outcome of a `tool_use`.
    pub struct ToolResultBlock : "type" = "tool_result", always = true {
        /// The id of the `tool_use` this answers.
        def "tool_use_id" tool_use_id: String,
        /// The result: a string or an array of content blocks.
        opt "content" content: Option<Value>,
        /// Whether the tool failed (or was denied).
        opt "is_error" is_error: Option<bool>,
    }
}

wire_struct! {
    /// An `image` block.
    pub struct ImageBlock : "type" = "image", always = true {
        /// The image source (`{"type":"base64","media_type":…,"data":…}` or a URL source).
        def "source" source: Value,
    }
}

wire_struct! {
    /// A `document` block (PDF or text).
    pub struct DocumentBlock : "type" = "document", always = true {
        /// The document source.
        def "source" source: Value,
        /// An optional title.
        opt "title" title: Option<String>,
        /// Optional context about the document.
        opt "context" context: Option<String>,
        /// Citation settings.
        opt "citations" citations: Option<Value>,
    }
}

wire_struct! {
    /// A `web_search_tool_result` block: the API's web search results.
    pub struct WebSearchToolResultBlock : "type" = "web_search_tool_result", always = true {
        /// The id of the `server_tool_use` this answers.
        def "tool_use_id" tool_use_id: String,
        /// The results (an array) or an error object.
        def "content" content: Value,
    }
}

impl TextBlock {
    /// A text block.
    pub fn new(text: impl Into<String>) -> Self {
        TextBlock {
            text: text.into(),
            ..Self::default()
        }
    }
}

impl ToolUseBlock {
    /// A tool use block.
    pub fn new(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        ToolUseBlock {
            id: id.into(),
            name: name.into(),
            input,
            ..Self::default()
        }
    }
}

impl ToolResultBlock {
    /// A tool result block with string or block content.
    pub fn new(tool_use_id: impl Into<String>, content: impl Into<Value>) -> Self {
        ToolResultBlock {
            tool_use_id: tool_use_id.into(),
            content: Some(content.into()),
            ..Self::default()
        }
    }

    /// Marks the result as an error.
    #[must_use]
    pub fn with_is_error(mut self, is_error: bool) -> Self {
        self.is_error = Some(is_error);
        self
    }

    /// The result's text: the string content, or its text blocks joined with newlines.
    pub fn text(&self) -> Option<String> {
        match self.content.as_ref()? {
            Value::String(s) => Some(s.clone()),
            Value::Array(blocks) => {
                let parts: Vec<&str> = blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect();
                Some(parts.join("\n"))
            }
            _ => None,
        }
    }
}

impl ImageBlock {
    /// An image block from any source object.
    pub fn new(source: Value) -> Self {
        ImageBlock {
            source,
            ..Self::default()
        }
    }

    /// A base64 image (`media_type` such as `image/png`).
    pub fn base64(media_type: impl Into<String>, data: impl Into<String>) -> Self {
        Self::new(json!({"type": "base64", "media_type": media_type.into(), "data": data.into()}))
    }
}

impl DocumentBlock {
    /// A document block from any source object.
    pub fn new(source: Value) -> Self {
        DocumentBlock {
            source,
            ..Self::default()
        }
    }
}

/// One content block. Unknown block types are kept whole in [`ContentBlock::Unknown`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ContentBlock {
    /// `text`
    Text(TextBlock),
    /// `thinking`
    Thinking(ThinkingBlock),
    /// `redacted_thinking`
    RedactedThinking(RedactedThinkingBlock),
    /// `tool_use`
    ToolUse(ToolUseBlock),
    /// `server_tool_use`
    ServerToolUse(ServerToolUseBlock),
    /// `tool_result`
    ToolResult(ToolResultBlock),
    /// `image`
    Image(ImageBlock),
    /// `document`
    Document(DocumentBlock),
    /// `web_search_tool_result`
    WebSearchToolResult(WebSearchToolResultBlock),
    /// Any other block (or a non-object), as received.
    Unknown(Value),
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text(TextBlock::new(text))
    }

    /// An image block from a source object.
    pub fn image(source: Value) -> Self {
        ContentBlock::Image(ImageBlock::new(source))
    }

    /// A block from raw JSON: typed when the `type` is known, else [`ContentBlock::Unknown`].
    pub fn from_value(value: Value) -> Self {
        match <ContentBlock as WireValue>::decode(&value) {
            Ok(Slot::Val(block)) => block,
            // Not an object, or a known block with a badly typed nested value: keep it raw.
            Ok(Slot::Null | Slot::Other(_)) | Err(_) => ContentBlock::Unknown(value),
        }
    }

    /// The block's `type` (`text`, `tool_use`, …; for unknown blocks, whatever it says).
    pub fn type_name(&self) -> &str {
        match self {
            ContentBlock::Text(_) => "text",
            ContentBlock::Thinking(_) => "thinking",
            ContentBlock::RedactedThinking(_) => "redacted_thinking",
            ContentBlock::ToolUse(_) => "tool_use",
            ContentBlock::ServerToolUse(_) => "server_tool_use",
            ContentBlock::ToolResult(_) => "tool_result",
            ContentBlock::Image(_) => "image",
            ContentBlock::Document(_) => "document",
            ContentBlock::WebSearchToolResult(_) => "web_search_tool_result",
            ContentBlock::Unknown(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The text of a `text` block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentBlock::Text(t) => Some(&t.text),
            _ => None,
        }
    }

    /// The `tool_use` block, if this is one.
    pub fn as_tool_use(&self) -> Option<&ToolUseBlock> {
        match self {
            ContentBlock::ToolUse(t) => Some(t),
            _ => None,
        }
    }

    /// The `tool_result` block, if this is one.
    pub fn as_tool_result(&self) -> Option<&ToolResultBlock> {
        match self {
            ContentBlock::ToolResult(t) => Some(t),
            _ => None,
        }
    }
}

impl From<TextBlock> for ContentBlock {
    fn from(b: TextBlock) -> Self {
        ContentBlock::Text(b)
    }
}

impl From<ToolUseBlock> for ContentBlock {
    fn from(b: ToolUseBlock) -> Self {
        ContentBlock::ToolUse(b)
    }
}

impl From<ToolResultBlock> for ContentBlock {
    fn from(b: ToolResultBlock) -> Self {
        ContentBlock::ToolResult(b)
    }
}

impl From<ImageBlock> for ContentBlock {
    fn from(b: ImageBlock) -> Self {
        ContentBlock::Image(b)
    }
}

impl From<DocumentBlock> for ContentBlock {
    fn from(b: DocumentBlock) -> Self {
        ContentBlock::Document(b)
    }
}

impl Tagged for ContentBlock {
    const TAG_KEY: &'static str = "type";

    fn dispatch<'de, A: MapAccess<'de>>(
        tag: &str,
        prefix: Prefix,
        map: A,
    ) -> Result<Self, A::Error> {
        Ok(match tag {
            "text" => ContentBlock::Text(finish(prefix, map)?),
            "thinking" => ContentBlock::Thinking(finish(prefix, map)?),
            "redacted_thinking" => ContentBlock::RedactedThinking(finish(prefix, map)?),
            "tool_use" => ContentBlock::ToolUse(finish(prefix, map)?),
            "server_tool_use" => ContentBlock::ServerToolUse(finish(prefix, map)?),
            "tool_result" => ContentBlock::ToolResult(finish(prefix, map)?),
            "image" => ContentBlock::Image(finish(prefix, map)?),
            "document" => ContentBlock::Document(finish(prefix, map)?),
            "web_search_tool_result" => ContentBlock::WebSearchToolResult(finish(prefix, map)?),
            _ => ContentBlock::Unknown(Value::Object(whole_object(
                Self::TAG_KEY,
                tag,
                prefix,
                map,
            )?)),
        })
    }

    fn untagged(object: serde_json::Map<String, Value>) -> Self {
        ContentBlock::Unknown(Value::Object(object))
    }
}

impl WireValue for ContentBlock {
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Slot<Self>, A::Error> {
        Ok(Slot::Val(wire::visit_tagged(map)?))
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match <Self as WireValue>::decode(d)? {
            Slot::Val(block) => block,
            Slot::Null => ContentBlock::Unknown(Value::Null),
            Slot::Other(v) => ContentBlock::Unknown(v),
        })
    }
}

impl Serialize for ContentBlock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentBlock::Text(b) => b.serialize(s),
            ContentBlock::Thinking(b) => b.serialize(s),
            ContentBlock::RedactedThinking(b) => b.serialize(s),
            ContentBlock::ToolUse(b) => b.serialize(s),
            ContentBlock::ServerToolUse(b) => b.serialize(s),
            ContentBlock::ToolResult(b) => b.serialize(s),
            ContentBlock::Image(b) => b.serialize(s),
            ContentBlock::Document(b) => b.serialize(s),
            ContentBlock::WebSearchToolResult(b) => b.serialize(s),
            ContentBlock::Unknown(v) => v.serialize(s),
        }
    }
}

/// The `content` of a user message: a plain string or content blocks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UserContent {
    /// A plain string.
    Text(String),
    /// Content blocks (`text`, `image`, `tool_result`, …).
    Blocks(Vec<ContentBlock>),
}

impl Default for UserContent {
    fn default() -> Self {
        UserContent::Blocks(Vec::new())
    }
}

impl UserContent {
    /// The blocks (empty for string content).
    pub fn blocks(&self) -> &[ContentBlock] {
        match self {
            UserContent::Text(_) => &[],
            UserContent::Blocks(b) => b,
        }
    }

    /// The text: the string content, or the text blocks joined with newlines.
    pub fn text(&self) -> String {
        match self {
            UserContent::Text(s) => s.clone(),
            UserContent::Blocks(b) => b
                .iter()
                .filter_map(ContentBlock::as_text)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

impl From<&str> for UserContent {
    fn from(s: &str) -> Self {
        UserContent::Text(s.to_owned())
    }
}

impl From<String> for UserContent {
    fn from(s: String) -> Self {
        UserContent::Text(s)
    }
}

impl From<Vec<ContentBlock>> for UserContent {
    fn from(b: Vec<ContentBlock>) -> Self {
        UserContent::Blocks(b)
    }
}

impl WireValue for UserContent {
    fn from_text(s: &str) -> Option<Self> {
        Some(UserContent::Text(s.to_owned()))
    }
    fn from_string(s: String) -> Result<Self, String> {
        Ok(UserContent::Text(s))
    }
    fn from_seq<'de, A: serde::de::SeqAccess<'de>>(seq: A) -> Result<Slot<Self>, A::Error> {
        Ok(match <Vec<ContentBlock> as WireValue>::from_seq(seq)? {
            Slot::Val(b) => Slot::Val(UserContent::Blocks(b)),
            Slot::Null => Slot::Null,
            Slot::Other(v) => Slot::Other(v),
        })
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

impl Serialize for UserContent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UserContent::Text(t) => s.serialize_str(t),
            UserContent::Blocks(b) => b.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for UserContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match <Self as WireValue>::decode(d)? {
            Slot::Val(c) => Ok(c),
            Slot::Null => Ok(UserContent::default()),
            Slot::Other(v) => Err(serde::de::Error::custom(format_args!(
                "user content must be a string or an array, got {v}"
            ))),
        }
    }
}
