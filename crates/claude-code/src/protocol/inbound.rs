//! [`Inbound`]: one parsed stdout line, split into ordinary messages and the control
//! protocol's envelopes. This is the session reader's hot path: a single pass over the
//! line with no intermediate `Value`, whatever the position of the `type` key.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::control::{ControlRequest, ControlResponse};
use super::message::Message;
use super::wire::{
    collect, finish, parse_tagged, whole_object, KeySeed, Prefix, TagSeed, TagValue, Tagged,
    TaggedVisitor,
};

/// One line the CLI wrote to stdout.
// The large variant is the common one: boxing it would cost an allocation per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Inbound {
    /// An ordinary message (for the consumer of the turn).
    Message(Message),
    /// A request the SDK must answer.
    ControlRequest(ControlRequest),
    /// The CLI's answer to one of our requests.
    ControlResponse(ControlResponse),
    /// The CLI abandoned one of its requests: stop its handler, send nothing. Other
    /// fields of the line are not kept.
    ControlCancelRequest {
        /// The id of the abandoned request.
        request_id: String,
    },
    /// `keep_alive`: ignore (other fields of the line are not kept).
    KeepAlive,
}

impl Inbound {
    /// Parses one stdout line (without or with its trailing newline).
    ///
    /// Unknown message types, subtypes, blocks and fields never fail; invalid JSON or a
    /// line that is not a JSON object does.
    pub fn parse(line: &str) -> Result<Inbound, serde_json::Error> {
        parse_tagged(line)
    }

    /// The wire `type`.
    pub fn type_name(&self) -> &str {
        match self {
            Inbound::Message(m) => m.type_name(),
            Inbound::ControlRequest(_) => "control_request",
            Inbound::ControlResponse(_) => "control_response",
            Inbound::ControlCancelRequest { .. } => "control_cancel_request",
            Inbound::KeepAlive => "keep_alive",
        }
    }
}

impl Tagged for Inbound {
    const TAG_KEY: &'static str = "type";

    fn dispatch<'de, A: MapAccess<'de>>(
        tag: &str,
        prefix: Prefix,
        mut map: A,
    ) -> Result<Self, A::Error> {
        Ok(match tag {
            "control_request" => Inbound::ControlRequest(finish(prefix, map)?),
            "control_response" => Inbound::ControlResponse(ControlResponse::from_object(
                whole_object(Self::TAG_KEY, tag, prefix, map)?,
            )),
            "control_cancel_request" => {
                let object = collect(prefix, map)?;
                let request_id = object
                    .get("request_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                Inbound::ControlCancelRequest { request_id }
            }
            "keep_alive" => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Inbound::KeepAlive
            }
            _ => Inbound::Message(Message::dispatch(tag, prefix, map)?),
        })
    }

    fn untagged(object: Map<String, Value>) -> Self {
        Inbound::Message(Message::Unknown(Value::Object(object)))
    }
}

impl<'de> Deserialize<'de> for Inbound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TaggedVisitor::<Self>::new("a stream-json object"))
    }
}

impl Serialize for Inbound {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Inbound::Message(m) => m.serialize(s),
            Inbound::ControlRequest(r) => r.serialize(s),
            Inbound::ControlResponse(r) => r.serialize(s),
            Inbound::ControlCancelRequest { request_id } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "control_cancel_request")?;
                m.serialize_entry("request_id", request_id)?;
                m.end()
            }
            Inbound::KeepAlive => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("type", "keep_alive")?;
                m.end()
            }
        }
    }
}

/// The `type` of a stdout line without parsing the message: stops reading at the `type`
/// key, so it costs a few dozen nanoseconds when `type` comes first (and a scan of the
/// keys before it otherwise). It does not validate the rest of the line; `None` when the
/// line is not a JSON object or has no string `type` before a syntax error.
pub fn peek_type(line: &str) -> Option<Cow<'_, str>> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(line);
    // Finding the tag ends the visit with an error on purpose, to stop reading; the
    // outcome is in `found` either way.
    let _ = de::Deserializer::deserialize_map(&mut de, Peek(&mut found));
    found
}

struct Peek<'a, 'de>(&'a mut Option<Cow<'de, str>>);

impl<'de> Visitor<'de> for Peek<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == "type" {
                if let TagValue::Str(tag) = map.next_value_seed(TagSeed)? {
                    *self.0 = Some(tag);
                }
                return Err(de::Error::custom("stop: type found"));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}
