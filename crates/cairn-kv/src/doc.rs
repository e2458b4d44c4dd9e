//! The node value shape, as hyperkv's: `{"k": key, "v": value, ...fields}` for a put and
//! `{"d": key, ...fields}` for a delete, in JSON.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::types::Head;

/// Largest well-formed kv document, in bytes: the log's default value limit
/// ([`Limits`](cairn_log::core::Limits)). A larger node (a peer may raise its log's limit up
/// to the format's 16 MiB) is a broken head, and [`Kv::put`](crate::Kv::put) refuses one.
pub const MAX_DOC_BYTES: usize = 4 << 20;

/// Deepest nesting of arrays and objects in a well-formed value, and in each extra field of
/// the document (`[]` and `{}` nest 1 level, a scalar 0); the document's own object adds one.
/// Kept well under serde_json's decoding limit (127 levels) so that the JSON the CLI prints,
/// which wraps a value in up to four more objects, decodes with serde_json too.
pub const MAX_VALUE_DEPTH: usize = 64;

/// What a kv node does, decoded from its value.
#[derive(Debug, Clone)]
pub enum DocOp<'a> {
    /// A put of this JSON value.
    Put(&'a RawValue),
    /// A delete (tombstone).
    Del,
}

impl PartialEq for DocOp<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (DocOp::Put(a), DocOp::Put(b)) => a.get() == b.get(),
            (DocOp::Del, DocOp::Del) => true,
            _ => false,
        }
    }
}

/// A kv node's document, borrowed from the node's value bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc<'a> {
    /// The key.
    pub key: Cow<'a, str>,
    /// Put or delete.
    pub op: DocOp<'a>,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    k: Option<&'a RawValue>,
    #[serde(borrow, default)]
    v: Option<&'a RawValue>,
    #[serde(borrow, default)]
    d: Option<&'a RawValue>,
}

fn null() -> &'static RawValue {
    // `RawValue::NULL` is a constant, but spelled this way it works on every serde_json 1.x.
    serde_json::from_str("null").unwrap_or_else(|_| unreachable!("null is valid JSON"))
}

/// Decodes a node value as a kv document, borrowing the value's JSON text. Returns `None` for
/// a value that is not one: not a JSON object, or with neither a string `"k"` nor a string
/// `"d"`, or with a `"v"` that is not UTF-8. As in hyperkv, `"k"` wins when both are present,
/// and a put without `"v"` puts `null`.
///
/// This checks the document's shape only: a value it returns may still be broken (a number
/// out of range, nesting too deep, …). [`check_doc`] is what every read path of the store
/// uses.
pub fn parse_doc(value: &[u8]) -> Option<Doc<'_>> {
    // Cheap pre-check: documents are JSON objects.
    if value.first() != Some(&b'{') {
        return None;
    }
    let w: Wire<'_> = serde_json::from_slice(value).ok()?;
    if let Some(k) = w.k {
        return Some(Doc {
            key: key_of(k)?,
            op: DocOp::Put(w.v.unwrap_or(null())),
        });
    }
    if let Some(d) = w.d {
        return Some(Doc {
            key: key_of(d)?,
            op: DocOp::Del,
        });
    }
    None
}

/// The document's shape, decoded without looking into any value (no nesting limit, numbers
/// and strings checked for syntax only): what makes a node a kv node.
#[derive(Deserialize)]
struct Shape<'a> {
    #[serde(borrow, default)]
    k: Option<&'a RawValue>,
    #[serde(default)]
    #[allow(dead_code)]
    v: Option<IgnoredAny>,
    #[serde(borrow, default)]
    d: Option<&'a RawValue>,
}

/// A kv node's document as every read path of the store sees it.
#[derive(Debug, Clone)]
pub struct Checked<'a> {
    /// The key.
    pub key: Cow<'a, str>,
    /// The value's JSON text (for a put), a tombstone, or why the document is broken.
    pub head: Head<&'a RawValue>,
}

/// Classifies a node value, as the view, `get`, `list`, `history`, `get_fields` and `updates`
/// all do (crate docs, "Well-formed documents"):
///
/// - `None`: not a kv node (not a JSON object with a string `"k"` or `"d"`, as
///   [`parse_doc`], except that a `"v"` that is not UTF-8 still makes a broken kv node).
///   The store ignores it.
/// - `Some` with [`Head::Broken`]: a kv node whose document is not well-formed. It takes part
///   in the supersede rule like any other kv node.
/// - `Some` with [`Head::Value`] (the value's JSON text) or [`Head::Deleted`]: a well-formed
///   put or delete; the whole document decodes as a `serde_json::Value`.
///
/// The result depends on the bytes only, so every replica classifies a node alike.
pub fn check_doc(value: &[u8]) -> Option<Checked<'_>> {
    if value.first() != Some(&b'{') {
        return None;
    }
    match well_formed(value) {
        Ok(()) => {
            let doc = parse_doc(value)?;
            Some(Checked {
                key: doc.key,
                head: match doc.op {
                    DocOp::Put(v) => Head::Value(v),
                    DocOp::Del => Head::Deleted,
                },
            })
        }
        Err(reason) => {
            let shape: Shape<'_> = serde_json::from_slice(value).ok()?;
            let key = match (shape.k, shape.d) {
                (Some(k), _) => key_of(k)?,
                (None, Some(d)) => key_of(d)?,
                (None, None) => return None,
            };
            Some(Checked {
                key,
                head: Head::Broken { reason },
            })
        }
    }
}

/// Checks that `doc` is a well-formed document: at most [`MAX_DOC_BYTES`], one JSON text in
/// UTF-8 whose strings hold no lone surrogate escapes, whose numbers fit an `f64`, and whose
/// arrays and objects nest at most [`MAX_VALUE_DEPTH`] + 1 levels. `Err` says why not.
pub(crate) fn well_formed(doc: &[u8]) -> Result<(), String> {
    if doc.len() > MAX_DOC_BYTES {
        return Err(format!(
            "document of {} bytes is over the {MAX_DOC_BYTES}-byte limit",
            doc.len()
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(doc);
    Walk {
        levels_left: MAX_VALUE_DEPTH + 1,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| e.to_string())
}

/// Walks one JSON value as `serde_json::Value` would decode it, allocating nothing, with
/// `levels_left` more levels of arrays and objects allowed.
#[derive(Clone, Copy)]
struct Walk {
    levels_left: usize,
}

impl Walk {
    fn enter<E: de::Error>(self) -> Result<Walk, E> {
        match self.levels_left.checked_sub(1) {
            Some(levels_left) => Ok(Walk { levels_left }),
            None => Err(E::custom(format_args!(
                "a value nests more than {MAX_VALUE_DEPTH} levels"
            ))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
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
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        // A key is a string: it nests nothing.
        while map.next_key_seed(Walk { levels_left: 0 })?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// A JSON string as a key: borrowed when it has no escapes, decoded otherwise.
fn key_of(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(s).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// Encodes a put document: `fields` first (without `k`, `v`, `d`), then `k` and `v`.
pub(crate) fn encode_put<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    fields: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(32 + key.len());
    out.push(b'{');
    write_fields(&mut out, fields)?;
    out.extend_from_slice(b"\"k\":");
    serde_json::to_writer(&mut out, key)?;
    out.extend_from_slice(b",\"v\":");
    serde_json::to_writer(&mut out, value)?;
    out.push(b'}');
    Ok(out)
}

/// Encodes a delete document: `fields` first (without `k`, `v`, `d`), then `d`.
pub(crate) fn encode_del(
    key: &str,
    fields: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(16 + key.len());
    out.push(b'{');
    write_fields(&mut out, fields)?;
    out.extend_from_slice(b"\"d\":");
    serde_json::to_writer(&mut out, key)?;
    out.push(b'}');
    Ok(out)
}

fn write_fields(
    out: &mut Vec<u8>,
    fields: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<(), serde_json::Error> {
    for (name, v) in fields.into_iter().flatten() {
        if matches!(name.as_str(), "k" | "v" | "d") {
            continue;
        }
        serde_json::to_writer(&mut *out, name)?;
        out.push(b':');
        serde_json::to_writer(&mut *out, v)?;
        out.push(b',');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_round_trip() {
        let mut f = serde_json::Map::new();
        f.insert("x".into(), 5.into());
        f.insert("k".into(), "ignored".into());
        let put = encode_put("a\"b", &serde_json::json!({"n": [1, 2]}), Some(&f)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&put).unwrap(),
            serde_json::json!({"x": 5, "k": "a\"b", "v": {"n": [1, 2]}})
        );
        let doc = parse_doc(&put).unwrap();
        assert_eq!(doc.key, "a\"b");
        assert!(matches!(doc.op, DocOp::Put(v) if v.get() == r#"{"n":[1,2]}"#));
        let del = encode_del("z", None).unwrap();
        assert_eq!(del, br#"{"d":"z"}"#);
        assert_eq!(parse_doc(&del).unwrap().op, DocOp::Del);
        assert!(
            parse_doc(br#"{"k":"a"}"#)
                .is_some_and(|d| matches!(d.op, DocOp::Put(v) if v.get() == "null"))
        );
        assert!(parse_doc(br#"{"k":"a","d":"b"}"#).is_some_and(|d| d.key == "a"));
        assert!(parse_doc(br#"{"k":1}"#).is_none());
        assert!(parse_doc(br#"{"x":1}"#).is_none());
        assert!(parse_doc(b"[1]").is_none());
        assert!(parse_doc(b"{nope").is_none());
        assert!(parse_doc(b"").is_none());
    }
}
