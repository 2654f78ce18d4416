//! The stdout line parser and message types: every line the CLI writes goes through
//! `route_line` (the session's router) and, for the consumer, `Inbound::parse`.
//!
//! Properties, beyond "never panics" (the exactness ones for objects without duplicate
//! keys, which the CLI's `JSON.stringify` never writes; the protocol module documents
//! no meaning for them):
//! - a line that parses re-serialises to JSON that parses again to the same `Inbound`;
//! - that JSON is the same JSON value as the line (nothing the CLI sent is lost; numbers
//!   compared as JavaScript reads them: `0.0` is `0`), but for
//!   the two envelopes documented to keep no fields (`keep_alive`) or only the
//!   `request_id` (`control_cancel_request`);
//! - `peek_type` agrees with the parsed type;
//! - the router parses exactly what `Inbound::parse` parses, for the types it acts on.
#![no_main]

use claude_code::__fuzz::{route_line, Line};
use claude_code::protocol::{peek_type, Inbound, Message};
use libfuzzer_sys::fuzz_target;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// JSON equality as JavaScript (the CLI) reads numbers: `0.0` and `0` are the same
/// number (the SDK writes whole `f64`s as integers, as `JSON.stringify` does); integers
/// compare exactly with integers.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Whether some object of the JSON text has a key twice (or the text is not JSON).
fn has_duplicate_keys(text: &str) -> bool {
    struct Unique;
    impl<'de> de::DeserializeSeed<'de> for Unique {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    return Err(de::Error::custom("duplicate key"));
                }
                map.next_value_seed(Unique)?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Unique)?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de::DeserializeSeed::deserialize(Unique, &mut de).is_err()
}

fuzz_target!(|data: &[u8]| {
    let routed = route_line(data);
    let Ok(line) = std::str::from_utf8(data) else {
        assert!(matches!(routed, Line::Skipped), "non-UTF-8 is skipped");
        return;
    };
    let Ok(inbound) = Inbound::parse(line) else {
        assert!(
            !matches!(routed, Line::Parsed(_)),
            "the router parsed what Inbound::parse refuses"
        );
        return;
    };
    if let Line::Parsed(routed) = &routed {
        assert_eq!(routed, &inbound, "the router parses as Inbound::parse");
    }

    if has_duplicate_keys(line) {
        return;
    }
    // Re-serialise and parse again.
    let json = serde_json::to_string(&inbound).expect("an Inbound serialises");
    let again = Inbound::parse(&json)
        .unwrap_or_else(|e| panic!("re-serialised line does not parse: {e}\n{json}"));
    assert_eq!(inbound, again, "parse . serialise . parse differs\n{json}");

    // The same JSON value as the line, when serde_json reads the line as one.
    let keeps_all = !matches!(
        inbound,
        Inbound::KeepAlive | Inbound::ControlCancelRequest { .. }
    );
    if let (true, Ok(original)) = (keeps_all, serde_json::from_str::<Value>(line)) {
        let back: Value = serde_json::from_str(&json).expect("valid JSON");
        assert!(
            same_json(&original, &back),
            "the JSON value changed\nline: {line}\nback: {json}"
        );
    }

    // The cheap type probe agrees with the parser.
    if let Some(t) = peek_type(line) {
        let name = inbound.type_name();
        let unknown = matches!(inbound, Inbound::Message(Message::Unknown(_)));
        assert!(unknown || name == t, "peek_type {t:?}, parsed {name:?}");
    }
});
