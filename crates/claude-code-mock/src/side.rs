//! Default answers to side traffic (everything that is not a scripted turn): probes,
//! structured helpers (JSON built from the requested schema), compaction summaries,
//! `count_tokens`, `/api/hello` and unknown endpoints. Side requests never touch the
//! script.

use serde_json::{json, Map, Value};

use crate::{classify::RequestKind, record::RecordedRequest, reply::Usage};

/// Text of a compaction reply; the CLI wants an `<analysis>` and a `<summary>` block.
const COMPACTION_TEXT: &str =
    "<analysis>Mock analysis.</analysis>\n<summary>Mock summary of the conversation so far.</summary>";

/// How deep the schema walker goes before giving up with `null`.
const MAX_SCHEMA_DEPTH: usize = 16;

/// What the mock answers to a side `/v1/messages` request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SideMessage {
    pub(crate) text: String,
    pub(crate) stop_reason: Option<&'static str>,
    pub(crate) usage: Usage,
}

/// The default reply for a side `/v1/messages` request of `kind`.
pub(crate) fn side_message(kind: RequestKind, req: &RecordedRequest) -> SideMessage {
    let plain = |text: &str| SideMessage {
        text: text.to_string(),
        stop_reason: None,
        usage: Usage::DEFAULT,
    };
    match kind {
        RequestKind::Probe => SideMessage {
            text: ".".into(),
            stop_reason: Some("max_tokens"),
            usage: Usage {
                input_tokens: Usage::DEFAULT.input_tokens,
                output_tokens: 1,
            },
        },
        RequestKind::Structured => {
            let schema = req
                .body
                .pointer("/output_config/format/schema")
                .cloned()
                .unwrap_or(Value::Null);
            plain(&value_for_schema(&schema, 0).to_string())
        }
        RequestKind::Compaction => plain(COMPACTION_TEXT),
        RequestKind::Suggestion => plain("mock suggestion"),
        _ => plain("mock"),
    }
}

/// The `count_tokens` answer: roughly one token per four body bytes.
pub(crate) fn count_tokens(body_len: usize) -> Value {
    json!({"input_tokens": (body_len / 4).max(1)})
}

/// A small value valid against `schema` (objects with their required properties,
/// `true`, `0`, `"mock"`, the first `enum`/`anyOf` option).
fn value_for_schema(schema: &Value, depth: usize) -> Value {
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Null;
    }
    for key in ["const", "default"] {
        if let Some(v) = schema.get(key) {
            return v.clone();
        }
    }
    if let Some(v) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return v.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|s| s.first())
        {
            return value_for_schema(first, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let props = schema.get("properties").and_then(Value::as_object);
            let names: Vec<&str> = match schema.get("required").and_then(Value::as_array) {
                Some(req) => req.iter().filter_map(Value::as_str).collect(),
                None => props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default(),
            };
            let mut out = Map::new();
            for name in names {
                let sub = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                out.insert(name.to_string(), value_for_schema(sub, depth + 1));
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = schema.get("items").unwrap_or(&Value::Null);
            Value::Array(
                (0..n.min(8))
                    .map(|_| value_for_schema(item, depth + 1))
                    .collect(),
            )
        }
        "boolean" => Value::Bool(true),
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or(json!(0)),
        "null" => Value::Null,
        _ => Value::String("mock".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_values_fill_required_fields() {
        let hook = json!({"type": "object",
            "properties": {"ok": {"type": "boolean"}, "reason": {"type": "string"}, "impossible": {"type": "boolean"}},
            "required": ["ok", "reason"]});
        assert_eq!(
            value_for_schema(&hook, 0),
            json!({"ok": true, "reason": "mock"})
        );
        let title = json!({"type": "object", "properties": {"title": {"type": "string"}}});
        assert_eq!(value_for_schema(&title, 0), json!({"title": "mock"}));
        let e = json!({"type": "array", "minItems": 2, "items": {"enum": ["a", "b"]}});
        assert_eq!(value_for_schema(&e, 0), json!(["a", "a"]));
    }
}
