//! The wiki's node values, read defensively: anything a hostile peer could write decodes to
//! a [`Body::Broken`] version or is left out, never to an error of a whole page.
//!
//! A save is a kv document (cairn-kv's shape) on the page's key `page/<Title>`:
//!
//! ```text
//! edit:     {"k": "page/<Title>", "v": {"text": "<markdown>"}, "summary": s, "time": ms}
//! redirect: {"k": "page/<Title>", "v": {"redirect": "<Title>"}, "summary": s, "time": ms}
//! delete:   {"d": "page/<Title>", "summary": s, "time": ms}
//! rename:   an edit with "from": "<Old title>" (it also links the old page's heads)
//! name:     {"k": "person/<author hex>", "v": {"name": "<display name>"}, "time": ms}
//! ```
//!
//! `summary` (the edit summary) and `time` (milliseconds since the Unix epoch, the editor's
//! claim, not verified by anyone) are optional kv `fields`.

use cairn_kv::{DocOp, parse_doc};
use cairn_log::core::{Node, PublicKey};
use serde_json::Value;

use crate::title::{PAGE_PREFIX, Title};

/// Longest edit summary kept, in characters (longer ones are cut).
pub const MAX_SUMMARY_CHARS: usize = 500;
/// Longest display name kept, in characters (longer ones are cut).
pub const MAX_NAME_CHARS: usize = 64;
/// Prefix of people's records in the kv store.
pub const PERSON_PREFIX: &str = "person/";

/// What one version of a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Markdown text.
    Text(String),
    /// A redirect to another page (left by a rename).
    Redirect(Title),
    /// A tombstone: the page was deleted by this version (undo by saving over it).
    Deleted,
    /// The node is on the page's key but is not a well-formed wiki version; the reason.
    Broken(String),
}

impl Body {
    /// The text, for a text version.
    pub fn text(&self) -> Option<&str> {
        match self {
            Body::Text(t) => Some(t),
            _ => None,
        }
    }
    /// A short word for the kind of version: `text`, `redirect`, `deleted`, `broken`.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Text(_) => "text",
            Body::Redirect(_) => "redirect",
            Body::Deleted => "deleted",
            Body::Broken(_) => "broken",
        }
    }
}

/// One decoded page version (without its place in the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageDoc {
    pub(crate) title: Title,
    pub(crate) body: Body,
    pub(crate) summary: String,
    pub(crate) time: Option<u64>,
    pub(crate) from: Option<Title>,
}

/// What a node is to the wiki.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WikiNode {
    /// A version of a page.
    Page(PageDoc),
    /// A display name written by its owner.
    Name {
        owner: PublicKey,
        name: String,
        time: Option<u64>,
    },
}

/// Keeps printable characters (no control characters), cut to `max` characters.
pub(crate) fn clean(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// Decodes a node as the wiki sees it. `None`: not a wiki node (not a kv document, a key
/// outside the wiki's prefixes, a page key whose title is not in normal form, or a name
/// record not written by the key's owner) — left out everywhere.
pub(crate) fn decode(node: &Node) -> Option<WikiNode> {
    let doc = parse_doc(node.value())?;
    if let Some(t) = doc.key.strip_prefix(PAGE_PREFIX) {
        let title = Title::exact(t)?;
        return Some(WikiNode::Page(page_doc(title, node.value(), &doc.op)));
    }
    if let Some(owner) = doc.key.strip_prefix(PERSON_PREFIX) {
        let author = node.author()?;
        if author.to_hex() != owner {
            return None;
        }
        let DocOp::Put(_) = doc.op else { return None };
        let v: Value = serde_json::from_slice(node.value()).ok()?;
        let name = v.get("v")?.get("name")?.as_str()?;
        let name = clean(name, MAX_NAME_CHARS).trim().to_owned();
        if name.is_empty() {
            return None;
        }
        return Some(WikiNode::Name {
            owner: *author,
            name,
            time: v.get("time").and_then(Value::as_u64),
        });
    }
    None
}

fn page_doc(title: Title, value: &[u8], op: &DocOp<'_>) -> PageDoc {
    let mut out = PageDoc {
        title,
        body: Body::Broken(String::new()),
        summary: String::new(),
        time: None,
        from: None,
    };
    // Values too deeply nested for serde_json's recursion limit fail here: broken.
    let v: Value = match serde_json::from_slice(value) {
        Ok(v) => v,
        Err(e) => {
            out.body = Body::Broken(format!("not JSON: {e}"));
            return out;
        }
    };
    match v.get("summary") {
        None => {}
        Some(Value::String(s)) => out.summary = clean(s, MAX_SUMMARY_CHARS),
        Some(_) => {
            out.body = Body::Broken("summary is not a string".into());
            return out;
        }
    }
    match v.get("time") {
        None => {}
        Some(t) => match t.as_u64() {
            Some(t) => out.time = Some(t),
            None => {
                out.body = Body::Broken("time is not a whole number".into());
                return out;
            }
        },
    }
    match v.get("from") {
        None => {}
        Some(f) => match f.as_str().and_then(Title::exact) {
            Some(f) => out.from = Some(f),
            None => {
                out.body = Body::Broken("from is not a title".into());
                return out;
            }
        },
    }
    out.body = match op {
        DocOp::Del => Body::Deleted,
        DocOp::Put(_) => match v.get("v") {
            Some(Value::Object(o)) if o.len() == 1 => match (o.get("text"), o.get("redirect")) {
                (Some(Value::String(t)), None) => Body::Text(t.clone()),
                (None, Some(Value::String(r))) => match Title::exact(r) {
                    Some(r) => Body::Redirect(r),
                    None => Body::Broken("redirect to an invalid title".into()),
                },
                _ => Body::Broken("value is not {text} or {redirect}".into()),
            },
            _ => Body::Broken("value is not {text} or {redirect}".into()),
        },
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_log::core::Keypair;

    fn node(value: &str) -> Node {
        let kp = Keypair::from_seed([7; 32]);
        cairn_log::core::Draft::new(
            vec![],
            Some(kp.public()),
            value.as_bytes().to_vec(),
            &cairn_log::core::Limits::default(),
        )
        .and_then(|d| d.sign(&kp))
        .unwrap()
    }

    fn body(value: &str) -> Option<Body> {
        match decode(&node(value))? {
            WikiNode::Page(p) => Some(p.body),
            WikiNode::Name { .. } => None,
        }
    }

    #[test]
    fn decodes_and_breaks() {
        assert_eq!(
            body(r#"{"k":"page/Cairn","v":{"text":"hi"},"summary":"s","time":5}"#),
            Some(Body::Text("hi".into()))
        );
        assert_eq!(body(r#"{"d":"page/Cairn"}"#), Some(Body::Deleted));
        assert_eq!(
            body(r#"{"k":"page/Cairn","v":{"redirect":"Other"}}"#),
            Some(Body::Redirect(Title::new("Other").unwrap()))
        );
        for broken in [
            r#"{"k":"page/Cairn","v":"text"}"#,
            r#"{"k":"page/Cairn","v":{"text":1}}"#,
            r#"{"k":"page/Cairn","v":{"text":"a","redirect":"B"}}"#,
            r#"{"k":"page/Cairn","v":{"redirect":"../x"}}"#,
            r#"{"k":"page/Cairn","v":{"text":"a"},"summary":{}}"#,
            r#"{"k":"page/Cairn","v":{"text":"a"},"time":-1}"#,
            r#"{"k":"page/Cairn","v":{"text":"a"},"from":"a/b"}"#,
        ] {
            assert!(matches!(body(broken), Some(Body::Broken(_))), "{broken}");
        }
        let deep = format!(
            r#"{{"k":"page/Cairn","v":{}1{}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(matches!(body(&deep), Some(Body::Broken(_)) | None));
        // Left out: not the wiki's keys or not normal titles.
        assert_eq!(body(r#"{"k":"page/../../etc","v":{"text":"x"}}"#), None);
        assert_eq!(body(r#"{"k":"page/cairn","v":{"text":"x"}}"#), None);
        assert_eq!(body(r#"{"k":"other","v":{"text":"x"}}"#), None);
        assert_eq!(body("not json"), None);
    }

    #[test]
    fn names_only_from_their_owner() {
        let kp = Keypair::from_seed([7; 32]);
        let own = format!(
            r#"{{"k":"person/{}","v":{{"name":" Ada\u0007 "}}}}"#,
            kp.public().to_hex()
        );
        assert!(matches!(
            decode(&node(&own)),
            Some(WikiNode::Name { ref name, .. }) if name == "Ada"
        ));
        let other = format!(
            r#"{{"k":"person/{}","v":{{"name":"Mallory"}}}}"#,
            Keypair::from_seed([8; 32]).public().to_hex()
        );
        assert_eq!(decode(&node(&other)), None);
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "(page/|person/)?(\\PC|\\.|/|\\[){0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("k".to_owned()),
                        Just("d".to_owned()),
                        Just("v".to_owned()),
                        Just("text".to_owned()),
                        Just("redirect".to_owned()),
                        Just("summary".to_owned()),
                        Just("time".to_owned()),
                        Just("from".to_owned()),
                        Just("name".to_owned()),
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any bytes, and any JSON of roughly the wiki's shape, decode to something or
        /// nothing without panicking; what decodes as a page has a title in normal form.
        #[test]
        fn decoding_never_fails(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
                                doc in json_value()) {
            let _ = decode(&node(&String::from_utf8_lossy(&bytes)));
            if let Some(WikiNode::Page(p)) = decode(&node(&doc.to_string())) {
                proptest::prop_assert_eq!(Title::exact(p.title.as_str()), Some(p.title.clone()));
                proptest::prop_assert!(p.summary.chars().count() <= MAX_SUMMARY_CHARS);
                proptest::prop_assert!(!p.summary.chars().any(char::is_control));
            }
        }
    }
}
