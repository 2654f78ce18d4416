//! Serde machinery shared by the wire types: lenient single-pass field decoding, the
//! `wire_struct!` macro that generates exact round-trip (de)serializers without
//! `#[serde(flatten)]`, and tag dispatch for enums whose tag key may sit anywhere in the
//! object. Everything here is crate-internal; the public types live in the sibling modules.
//!
//! Round-trip rules (so that `parse → serialize` gives back the same JSON value):
//! * a known key whose value has an unexpected JSON type is kept in `extra` and the typed
//!   field stays empty;
//! * an `Option` field that was `null` on the wire is written back as `null`, one that was
//!   absent stays absent ([`WireMask`] remembers which);
//! * a defaulted field is written when it was on the wire or differs from its default;
//! * `f64` values that are whole numbers are written as integers, as JavaScript does.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One decoded field value.
pub(crate) enum Slot<T> {
    /// The value had the expected JSON type.
    Val(T),
    /// The value was `null`.
    Null,
    /// The value had another JSON type; kept verbatim.
    Other(Value),
}

/// Which keys were present on the wire in a form the typed field alone cannot record.
///
/// Bit `i` belongs to the struct's `i`-th field: for an `Option` field it means "was
/// `null`", for a defaulted field "was present". Bit [`TAG_BIT`] means "the tag key was
/// present with the expected value".
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WireMask(u64);

/// The [`WireMask`] bit recording the struct's tag.
pub(crate) const TAG_BIT: u32 = 63;

impl WireMask {
    pub(crate) fn set(&mut self, bit: u32) {
        self.0 |= 1 << bit;
    }

    pub(crate) fn clear(&mut self, bit: u32) {
        self.0 &= !(1 << bit);
    }

    pub(crate) fn has(&self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }
}

impl fmt::Debug for WireMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireMask({:#x})", self.0)
    }
}

/// A type that can be decoded leniently from any JSON value (see [`Slot`]) and encoded back.
pub(crate) trait WireValue: Sized {
    /// From a JSON boolean.
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    /// From a non-negative JSON integer.
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    /// From a negative JSON integer.
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    /// From a JSON number with a fraction or exponent.
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    /// From a JSON string.
    fn from_text(_: &str) -> Option<Self> {
        None
    }
    /// From an owned JSON string (saves a copy when the deserializer owns it).
    fn from_string(s: String) -> Result<Self, String> {
        Self::from_text(&s).ok_or(s)
    }
    /// From a JSON array.
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Slot<Self>, A::Error> {
        Ok(Slot::Other(Value::deserialize(
            SeqAccessDeserializer::new(seq),
        )?))
    }
    /// From a JSON object.
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Slot<Self>, A::Error> {
        Ok(Slot::Other(Value::deserialize(
            MapAccessDeserializer::new(map),
        )?))
    }
    /// The value a defaulted field takes for a wire `null`, if `null` is a value of the type.
    fn null_value() -> Option<Self> {
        None
    }
    /// Writes the value.
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;

    /// Decodes one value without buffering.
    fn decode<'de, D: Deserializer<'de>>(d: D) -> Result<Slot<Self>, D::Error> {
        d.deserialize_any(AnyVisitor::<Self>(PhantomData))
    }
}

/// Routes every JSON shape to the matching [`WireValue`] hook.
pub(crate) struct AnyVisitor<T>(PhantomData<T>);

fn keep<T>(typed: Option<T>, raw: impl FnOnce() -> Value) -> Slot<T> {
    match typed {
        Some(v) => Slot::Val(v),
        None => Slot::Other(raw()),
    }
}

impl<'de, T: WireValue> Visitor<'de> for AnyVisitor<T> {
    type Value = Slot<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Slot<T>, E> {
        Ok(keep(T::from_bool(v), || Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Slot<T>, E> {
        Ok(keep(T::from_i64(v), || Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Slot<T>, E> {
        Ok(keep(T::from_u64(v), || Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Slot<T>, E> {
        Ok(keep(T::from_f64(v), || Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Slot<T>, E> {
        Ok(keep(T::from_text(v), || Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Slot<T>, E> {
        Ok(match T::from_string(v) {
            Ok(t) => Slot::Val(t),
            Err(s) => Slot::Other(Value::String(s)),
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Slot<T>, E> {
        Ok(Slot::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Slot<T>, E> {
        Ok(Slot::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Slot<T>, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot<T>, A::Error> {
        T::from_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot<T>, A::Error> {
        T::from_map(map)
    }
}

/// A [`DeserializeSeed`] producing a [`Slot`].
pub(crate) struct SlotSeed<T>(PhantomData<T>);

impl<T> SlotSeed<T> {
    pub(crate) fn new() -> Self {
        SlotSeed(PhantomData)
    }
}

impl<'de, T: WireValue> DeserializeSeed<'de> for SlotSeed<T> {
    type Value = Slot<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Slot<T>, D::Error> {
        T::decode(d)
    }
}

impl WireValue for String {
    fn from_text(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn from_string(s: String) -> Result<Self, String> {
        Ok(s)
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

impl WireValue for bool {
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*self)
    }
}

macro_rules! wire_unsigned {
    ($($t:ty),*) => {$(
        impl WireValue for $t {
            fn from_u64(v: u64) -> Option<Self> {
                <$t>::try_from(v).ok()
            }
            fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64(u64::from(*self))
            }
        }
    )*};
}
wire_unsigned!(u64, u32, u16);

impl WireValue for i64 {
    fn from_u64(v: u64) -> Option<Self> {
        i64::try_from(v).ok()
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v)
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(*self)
    }
}

/// Largest integer below which every whole `f64` is exact (2^53).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

impl WireValue for f64 {
    fn from_u64(v: u64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(v as f64)
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(v)
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        encode_f64(*self, s)
    }
}

/// Writes a number the way `JSON.stringify` does: whole numbers without a fraction.
pub(crate) fn encode_f64<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < MAX_SAFE_INTEGER {
        // Exact: |v| < 2^53 and v is whole.
        #[allow(clippy::cast_possible_truncation)]
        let i = v as i64;
        if i >= 0 {
            s.serialize_u64(i.unsigned_abs())
        } else {
            s.serialize_i64(i)
        }
    } else {
        s.serialize_f64(v)
    }
}

impl WireValue for Value {
    fn from_bool(v: bool) -> Option<Self> {
        Some(Value::Bool(v))
    }
    fn from_u64(v: u64) -> Option<Self> {
        Some(Value::from(v))
    }
    fn from_i64(v: i64) -> Option<Self> {
        Some(Value::from(v))
    }
    fn from_f64(v: f64) -> Option<Self> {
        Some(Value::from(v))
    }
    fn from_text(s: &str) -> Option<Self> {
        Some(Value::String(s.to_owned()))
    }
    fn from_string(s: String) -> Result<Self, String> {
        Ok(Value::String(s))
    }
    fn from_seq<'de, A: SeqAccess<'de>>(seq: A) -> Result<Slot<Self>, A::Error> {
        Ok(Slot::Val(Value::deserialize(SeqAccessDeserializer::new(
            seq,
        ))?))
    }
    fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<Slot<Self>, A::Error> {
        Ok(Slot::Val(Value::deserialize(MapAccessDeserializer::new(
            map,
        ))?))
    }
    fn null_value() -> Option<Self> {
        Some(Value::Null)
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

impl<T: DeserializeOwned + Serialize> WireValue for Vec<T> {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Slot<Self>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<T>()? {
            out.push(item);
        }
        Ok(Slot::Val(out))
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

impl<T: DeserializeOwned + Serialize> WireValue for BTreeMap<String, T> {
    fn from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Slot<Self>, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, T>()? {
            out.insert(k, v);
        }
        Ok(Slot::Val(out))
    }
    fn encode<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

/// Field handling for `Option<T>` fields.
pub(crate) mod opt {
    use super::{Slot, WireMask, WireValue};
    use serde::{Serialize, Serializer};
    use serde_json::{Map, Value};

    /// Stores a decoded value.
    pub(crate) fn put<T: WireValue>(
        slot: Slot<T>,
        field: &mut Option<T>,
        mask: &mut WireMask,
        bit: u32,
        key: &str,
        extra: &mut Map<String, Value>,
    ) {
        match slot {
            Slot::Val(v) => {
                *field = Some(v);
                mask.clear(bit);
            }
            Slot::Null => {
                *field = None;
                mask.set(bit);
            }
            Slot::Other(v) => {
                *field = None;
                mask.clear(bit);
                extra.insert(key.to_owned(), v);
            }
        }
    }

    /// Whether the field is written.
    pub(crate) fn emits<T>(field: &Option<T>, null_on_wire: bool) -> bool {
        field.is_some() || null_on_wire
    }

    /// Writes the field (`null` when `None`).
    pub(crate) struct Enc<'a, T>(pub(crate) &'a Option<T>);

    impl<T: WireValue> Serialize for Enc<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Some(v) => v.encode(s),
                None => s.serialize_unit(),
            }
        }
    }
}

/// Field handling for defaulted (non-`Option`) fields.
pub(crate) mod def {
    use super::{Slot, WireMask, WireValue};
    use serde::{Serialize, Serializer};
    use serde_json::{Map, Value};

    /// Stores a decoded value.
    pub(crate) fn put<T: WireValue + Default>(
        slot: Slot<T>,
        field: &mut T,
        mask: &mut WireMask,
        bit: u32,
        key: &str,
        extra: &mut Map<String, Value>,
    ) {
        match slot {
            Slot::Val(v) => {
                *field = v;
                mask.set(bit);
            }
            Slot::Null => match T::null_value() {
                Some(v) => {
                    *field = v;
                    mask.set(bit);
                }
                None => {
                    extra.insert(key.to_owned(), Value::Null);
                }
            },
            Slot::Other(v) => {
                extra.insert(key.to_owned(), v);
            }
        }
    }

    /// Whether the field is written.
    pub(crate) fn emits<T: Default + PartialEq>(field: &T, present_on_wire: bool) -> bool {
        present_on_wire || *field != T::default()
    }

    /// Writes the field.
    pub(crate) struct Enc<'a, T>(pub(crate) &'a T);

    impl<T: WireValue> Serialize for Enc<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.encode(s)
        }
    }
}

/// A struct generated by `wire_struct!`.
pub(crate) trait WireStruct: Default {
    /// Records that the tag was present (it was consumed by a dispatcher).
    fn mark_tag(&mut self);
    /// Decodes one already-buffered entry.
    fn decode_value(&mut self, key: String, value: Value) -> Result<(), serde_json::Error>;
    /// Decodes the remaining entries of a map.
    fn decode_rest<'de, A: MapAccess<'de>>(&mut self, map: A) -> Result<(), A::Error>;
}

/// Visitor for a [`WireStruct`] given as a JSON object.
pub(crate) struct StructVisitor<T>(PhantomData<T>);

impl<T> StructVisitor<T> {
    pub(crate) fn new() -> Self {
        StructVisitor(PhantomData)
    }
}

impl<'de, T: WireStruct> Visitor<'de> for StructVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        let mut out = T::default();
        out.decode_rest(map)?;
        Ok(out)
    }
}

/// A tag value: a string (borrowed from the input when possible) or anything else.
pub(crate) enum TagValue<'de> {
    Str(Cow<'de, str>),
    Other(Value),
}

/// Reads a tag value without allocating for unescaped strings.
pub(crate) struct TagSeed;

impl<'de> DeserializeSeed<'de> for TagSeed {
    type Value = TagValue<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TagValue<'de>, D::Error> {
        d.deserialize_any(TagVisitor)
    }
}

struct TagVisitor;

impl<'de> Visitor<'de> for TagVisitor {
    type Value = TagValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(TagValue::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TagValue::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(TagValue::Str(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(TagValue::Other(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(TagValue::Other(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(TagValue::Other(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(TagValue::Other(Value::from(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TagValue::Other(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(TagValue::Other(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(TagValue::Other(Value::deserialize(
            SeqAccessDeserializer::new(seq),
        )?))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(TagValue::Other(Value::deserialize(
            MapAccessDeserializer::new(map),
        )?))
    }
}

/// Reads a map key, borrowing it from the input when possible.
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Entries read before the tag key was found.
pub(crate) type Prefix = Vec<(String, Value)>;

/// An enum told apart by a string tag key (`type` or `subtype`) that may appear anywhere
/// in the object.
pub(crate) trait Tagged: Sized {
    /// The key holding the tag.
    const TAG_KEY: &'static str;
    /// Builds the value from its tag, the entries before the tag, and the rest of the map.
    fn dispatch<'de, A: MapAccess<'de>>(
        tag: &str,
        prefix: Prefix,
        map: A,
    ) -> Result<Self, A::Error>;
    /// Builds the value from an object without a string tag.
    fn untagged(object: Map<String, Value>) -> Self;
}

/// Decodes a [`Tagged`] enum in one pass: entries before the tag are buffered as values
/// (none in the common case where the tag comes first), the rest streams into the variant.
pub(crate) fn visit_tagged<'de, T: Tagged, A: MapAccess<'de>>(mut map: A) -> Result<T, A::Error> {
    let mut prefix = Prefix::new();
    while let Some(key) = map.next_key_seed(KeySeed)? {
        if key == T::TAG_KEY {
            match map.next_value_seed(TagSeed)? {
                TagValue::Str(tag) => return T::dispatch(&tag, prefix, map),
                TagValue::Other(v) => {
                    prefix.push((key.into_owned(), v));
                    return Ok(T::untagged(collect(prefix, map)?));
                }
            }
        }
        let value: Value = map.next_value()?;
        prefix.push((key.into_owned(), value));
    }
    Ok(T::untagged(prefix.into_iter().collect()))
}

/// Parses a [`Tagged`] value from a string. One pass when the tag is the first key (the
/// common case); otherwise a scan that only looks for the tag (building nothing), then a
/// direct decode, which beats buffering the entries before the tag as `Value`s.
pub(crate) fn parse_tagged<T: Tagged>(s: &str) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(s);
    let first = de::Deserializer::deserialize_map(&mut de, FirstPass::<T>(PhantomData))?;
    de.end()?;
    let tag = match first {
        Pass::Done(value) => return Ok(value),
        Pass::Tag(tag) => tag,
        Pass::Generic => {
            return serde_json::from_str::<ViaVisitor<T>>(s).map(|t| t.0);
        }
    };
    let mut de = serde_json::Deserializer::from_str(s);
    let value = de::Deserializer::deserialize_map(
        &mut de,
        Targeted::<T> {
            tag: &tag,
            marker: PhantomData,
        },
    )?;
    de.end()?;
    Ok(value)
}

/// Outcome of the first pass of [`parse_tagged`].
enum Pass<'de, T> {
    /// The tag came first: fully decoded.
    Done(T),
    /// The tag, found later in the object.
    Tag(Cow<'de, str>),
    /// No string tag: decode generically.
    Generic,
}

struct FirstPass<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for FirstPass<T> {
    type Value = Pass<'de, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(key) = map.next_key_seed(KeySeed)? else {
            return Ok(Pass::Done(T::untagged(Map::new())));
        };
        if key == T::TAG_KEY {
            return Ok(Pass::Done(match map.next_value_seed(TagSeed)? {
                TagValue::Str(tag) => T::dispatch(&tag, Prefix::new(), map)?,
                TagValue::Other(v) => T::untagged(collect(vec![(key.into_owned(), v)], map)?),
            }));
        }
        map.next_value::<de::IgnoredAny>()?;
        let mut tag = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == T::TAG_KEY {
                tag = match map.next_value_seed(TagSeed)? {
                    TagValue::Str(t) => Some(t),
                    TagValue::Other(_) => None,
                };
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(tag.map_or(Pass::Generic, Pass::Tag))
    }
}

/// Decodes a [`Tagged`] value whose tag is already known, from the whole map.
struct Targeted<'t, T> {
    tag: &'t str,
    marker: PhantomData<T>,
}

impl<'de, T: Tagged> Visitor<'de> for Targeted<'_, T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        // The tag key shows up again inside the map; every dispatch target accepts it.
        T::dispatch(self.tag, Prefix::new(), map)
    }
}

/// Generic-path wrapper so [`parse_tagged`] can fall back to [`visit_tagged`].
struct ViaVisitor<T>(T);

impl<'de, T: Tagged> Deserialize<'de> for ViaVisitor<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TaggedVisitor::<T>::new("a JSON object"))
            .map(ViaVisitor)
    }
}

/// Finishes a [`WireStruct`] variant after its tag was consumed by [`visit_tagged`].
pub(crate) fn finish<'de, S: WireStruct, A: MapAccess<'de>>(
    prefix: Prefix,
    map: A,
) -> Result<S, A::Error> {
    let mut out = S::default();
    out.mark_tag();
    for (k, v) in prefix {
        out.decode_value(k, v).map_err(de::Error::custom)?;
    }
    out.decode_rest(map)?;
    Ok(out)
}

/// Collects the prefix and the rest of the map into one object.
pub(crate) fn collect<'de, A: MapAccess<'de>>(
    prefix: Prefix,
    mut map: A,
) -> Result<Map<String, Value>, A::Error> {
    let mut out: Map<String, Value> = prefix.into_iter().collect();
    while let Some((k, v)) = map.next_entry::<String, Value>()? {
        out.insert(k, v);
    }
    Ok(out)
}

/// The whole object of a tagged value: prefix, tag and the rest of the map.
pub(crate) fn whole_object<'de, A: MapAccess<'de>>(
    tag_key: &str,
    tag: &str,
    prefix: Prefix,
    map: A,
) -> Result<Map<String, Value>, A::Error> {
    let mut out = collect(prefix, map)?;
    out.insert(tag_key.to_owned(), Value::String(tag.to_owned()));
    Ok(out)
}

/// Visitor for a [`Tagged`] enum given as a JSON object.
pub(crate) struct TaggedVisitor<T>(PhantomData<T>, &'static str);

impl<T> TaggedVisitor<T> {
    pub(crate) fn new(expecting: &'static str) -> Self {
        TaggedVisitor(PhantomData, expecting)
    }
}

impl<'de, T: Tagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        visit_tagged(map)
    }
}

/// Serializes `value` to one NDJSON line (with the trailing newline).
pub(crate) fn to_line<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = match serde_json::to_string(value) {
        Ok(s) => s,
        // Only reachable with a non-string map key or a failing Serialize impl, neither
        // of which the protocol types have.
        Err(e) => unreachable!("protocol types always serialize: {e}"),
    };
    out.push('\n');
    out
}

/// Generates a wire struct: public fields, `extra`, a private [`WireMask`], `Debug`,
/// `Serialize`, `Deserialize`, [`WireValue`] and [`WireStruct`].
///
/// ```text
/// wire_struct! {
///     /// Docs.
///     pub struct Name : "type" = "tag", always = true {
///         /// Field docs.
///         opt "wire_key" field: Option<T>,
///         def "wireKey" other: U,
///     }
/// }
/// ```
/// `opt` fields are `Option<T>`, `def` fields use `Default`. The tag part is optional;
/// `always = false` writes the tag back only when it was on the wire.
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(: $tk:literal = $tv:literal, always = $always:literal)? {
            $(
                $(#[$fmeta:meta])*
                $kind:ident $wire:literal $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Default)]
        #[non_exhaustive]
        $vis struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Fields this SDK does not model (and known fields whose value had an
            /// unexpected JSON type), kept so that serializing gives back the same JSON.
            pub extra: ::serde_json::Map<String, ::serde_json::Value>,
            wire: $crate::protocol::wire::WireMask,
        }

        const _: () = {
            use ::std::fmt;
            use ::serde::de::{self, MapAccess};
            use ::serde::ser::SerializeMap;
            use $crate::protocol::wire as w;

            #[allow(non_camel_case_types, dead_code)]
            #[derive(Clone, Copy)]
            enum Idx { $($field,)* }

            // One WireMask bit per field, bit 63 is the tag's.
            const _: () = assert!([$(stringify!($field)),*].len() < 63);

            #[allow(dead_code)]
            enum Key { F(Idx), Tag, Other(String) }

            fn key_of(s: &str) -> Option<Key> {
                Some(match s {
                    $( $wire => Key::F(Idx::$field), )*
                    $( $tk => Key::Tag, )?
                    _ => return None,
                })
            }

            struct KeySeed;
            struct KeyVisitor;

            impl<'de> de::Visitor<'de> for KeyVisitor {
                type Value = Key;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                    Ok(key_of(s).unwrap_or_else(|| Key::Other(s.to_owned())))
                }
                fn visit_string<E: de::Error>(self, s: String) -> Result<Key, E> {
                    Ok(key_of(&s).unwrap_or(Key::Other(s)))
                }
            }

            impl<'de> de::DeserializeSeed<'de> for KeySeed {
                type Value = Key;
                fn deserialize<D: ::serde::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
                    d.deserialize_identifier(KeyVisitor)
                }
            }

            impl $name {
                #[allow(dead_code, unused_variables)]
                fn put_tag(&mut self, tag: w::TagValue<'_>) {
                    $(
                        match tag {
                            w::TagValue::Str(s) if s == $tv => self.wire.set(w::TAG_BIT),
                            w::TagValue::Str(s) => {
                                self.extra.insert($tk.to_owned(), ::serde_json::Value::String(s.into_owned()));
                            }
                            w::TagValue::Other(v) => {
                                self.extra.insert($tk.to_owned(), v);
                            }
                        }
                    )?
                }

                #[allow(unused_variables)]
                fn emits_key(&self, k: &str) -> bool {
                    match k {
                        $( $wire => w::$kind::emits(&self.$field, self.wire.has(Idx::$field as u32)), )*
                        $( $tk => $always || self.wire.has(w::TAG_BIT), )?
                        _ => false,
                    }
                }
            }

            impl w::WireStruct for $name {
                fn mark_tag(&mut self) {
                    self.wire.set(w::TAG_BIT);
                }

                fn decode_value(
                    &mut self,
                    key: String,
                    value: ::serde_json::Value,
                ) -> Result<(), ::serde_json::Error> {
                    match key_of(&key) {
                        $( Some(Key::F(Idx::$field)) => {
                            let slot = de::DeserializeSeed::deserialize(w::SlotSeed::new(), value)?;
                            w::$kind::put(slot, &mut self.$field, &mut self.wire, Idx::$field as u32, $wire, &mut self.extra);
                        } )*
                        Some(Key::Tag) => {
                            let tag = de::DeserializeSeed::deserialize(w::TagSeed, value)?;
                            self.put_tag(tag);
                        }
                        Some(Key::Other(_)) | None => {
                            self.extra.insert(key, value);
                        }
                    }
                    Ok(())
                }

                fn decode_rest<'de, A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
                    while let Some(key) = map.next_key_seed(KeySeed)? {
                        match key {
                            $( Key::F(Idx::$field) => {
                                let slot = map.next_value_seed(w::SlotSeed::new())?;
                                w::$kind::put(slot, &mut self.$field, &mut self.wire, Idx::$field as u32, $wire, &mut self.extra);
                            } )*
                            Key::Tag => {
                                let tag = map.next_value_seed(w::TagSeed)?;
                                self.put_tag(tag);
                            }
                            Key::Other(k) => {
                                let v: ::serde_json::Value = map.next_value()?;
                                self.extra.insert(k, v);
                            }
                        }
                    }
                    Ok(())
                }
            }

            impl w::WireValue for $name {
                fn from_map<'de, A: MapAccess<'de>>(map: A) -> Result<w::Slot<Self>, A::Error> {
                    let mut out = Self::default();
                    w::WireStruct::decode_rest(&mut out, map)?;
                    Ok(w::Slot::Val(out))
                }
                fn encode<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    ::serde::Serialize::serialize(self, s)
                }
            }

            impl<'de> ::serde::Deserialize<'de> for $name {
                fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    d.deserialize_map(w::StructVisitor::<Self>::new())
                }
            }

            impl ::serde::Serialize for $name {
                fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    let mut m = s.serialize_map(None)?;
                    $( if $always || self.wire.has(w::TAG_BIT) {
                        m.serialize_entry($tk, $tv)?;
                    } )?
                    $( if w::$kind::emits(&self.$field, self.wire.has(Idx::$field as u32)) {
                        m.serialize_entry($wire, &w::$kind::Enc(&self.$field))?;
                    } )*
                    for (k, v) in &self.extra {
                        if !self.emits_key(k) {
                            m.serialize_entry(k, v)?;
                        }
                    }
                    m.end()
                }
            }

            // Equal when both would serialize to the same JSON: field values, `extra`,
            // and whether each field is written at all (null vs absent).
            impl PartialEq for $name {
                fn eq(&self, other: &Self) -> bool {
                    $( self.$field == other.$field
                        && w::$kind::emits(&self.$field, self.wire.has(Idx::$field as u32))
                            == w::$kind::emits(&other.$field, other.wire.has(Idx::$field as u32))
                        && )*
                    $( ($always || self.wire.has(w::TAG_BIT))
                        == ($always || other.wire.has(w::TAG_BIT))
                        && )?
                    self.extra == other.extra
                }
            }

            impl fmt::Debug for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.debug_struct(stringify!($name))
                        $( .field(stringify!($field), &self.$field) )*
                        .field("extra", &self.extra)
                        .finish()
                }
            }
        };
    };
}

pub(crate) use wire_struct;
