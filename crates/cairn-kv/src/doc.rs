//! The node value shape, as hyperkv's: `{"k": key, "v": value, ...fields}` for a put and
//! `{"d": key, ...fields}` for a delete, in JSON.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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

/// Decodes a node value as a kv document. Returns `None` for a value that is not one: not a
/// JSON object, or with neither a string `"k"` nor a string `"d"`. As in hyperkv, `"k"` wins
/// when both are present, and a put without `"v"` puts `null`.
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
