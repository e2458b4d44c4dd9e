//! The wiki's ops of the worker's message API (every op named `wiki_…`), over
//! [`cairn_wiki::Wiki`]. [`api`](crate::api) hands them here by their prefix; requests and
//! responses have the same shape as the other ops (`{id, ok}` or `{id, error: {kind,
//! message}}`).
//!
//! Titles are given as the user wrote them and normalized here ([`Title::new`]); a text that
//! cannot be a title is a `bad_input` error. Versions and authors are hex. `time` is the
//! editor's claimed time in milliseconds since the Unix epoch: the page passes its clock
//! (the model reads none). A version's `verified` says its signature was checked: the log
//! verifies every signed node before it stores it, so a version is verified exactly when it
//! has an author.
//!
//! | op | fields | result |
//! |---|---|---|
//! | `wiki_list` | | `[{title, state, heads, text, redirect, deleted, broken}]` |
//! | `wiki_page` | `title` | `{title, exists, forked, deleted, redirect, hidden, heads, versions: [version]}` |
//! | `wiki_titles` | `titles`: [string] (at most 1000) | `[{title, state}]` (`title` null: not a title; `state` `missing` or the list's) |
//! | `wiki_save` | `title`, `text`, `summary`, `time`, `links`: [hex] (default: every current version) | `{hash}` |
//! | `wiki_history` | `title` | `[version]`, newest first |
//! | `wiki_diff` | `title`, `a`, `b` | `{diff}` (unified, lines) |
//! | `wiki_merge` | `title` | `{text, conflicts, heads, bases}` |
//! | `wiki_revert` | `title`, `to`, `summary`, `time` | `{hash}` |
//! | `wiki_rename` | `from`, `to`, `summary`, `time` | `{hash, redirect}` |
//! | `wiki_delete` / `wiki_undelete` | `title`, `summary`, `time` | `{hash}` |
//! | `wiki_search` | `query`, `limit` (20, at most 1000) | `[{title, score}]` |
//! | `wiki_backlinks` | `title` | `[title]` |
//! | `wiki_changes` | `limit` (50, at most 1000) | `[{hash, title, kind, author, name, time, summary, from}]` |
//! | `wiki_set_name` | `name`, `time` | `{hash}` |
//! | `wiki_people` | | `[{key, name, me, blocked}]`: this peer, the authors of the last 1000 changes and the blocked |
//! | `wiki_block` / `wiki_unblock` | `author`: hex | `{blocked: [hex]}` |
//!
//! A version is `{hash, title, author, name, verified, time, summary, kind, text?,
//! redirect?, broken?, parents, from?, change}` (`name`: the author's display name, if any).

use std::collections::{BTreeMap, BTreeSet};

use cairn_log::core::{Hash, PublicKey};
use cairn_wiki::{Body, SaveOptions, Title, Version, Wiki};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{MAX_PAGE, RequestError};

const DEFAULT_HITS: u64 = 20;
const DEFAULT_CHANGES: u64 = 50;
/// How many recent changes the people list takes its authors from.
const PEOPLE_FROM_CHANGES: usize = 1000;

// The variants are named as the ops are on the wire (`wiki_list` …).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum WikiRequest {
    WikiList,
    WikiPage {
        title: String,
    },
    WikiTitles {
        titles: Vec<String>,
    },
    WikiSave {
        title: String,
        text: String,
        #[serde(default)]
        summary: String,
        time: Option<u64>,
        links: Option<Vec<String>>,
    },
    WikiHistory {
        title: String,
    },
    WikiDiff {
        title: String,
        a: String,
        b: String,
    },
    WikiMerge {
        title: String,
    },
    WikiRevert {
        title: String,
        to: String,
        #[serde(default)]
        summary: String,
        time: Option<u64>,
    },
    WikiRename {
        from: String,
        to: String,
        #[serde(default)]
        summary: String,
        time: Option<u64>,
    },
    WikiDelete {
        title: String,
        #[serde(default)]
        summary: String,
        time: Option<u64>,
    },
    WikiUndelete {
        title: String,
        #[serde(default)]
        summary: String,
        time: Option<u64>,
    },
    WikiSearch {
        query: String,
        limit: Option<u64>,
    },
    WikiBacklinks {
        title: String,
    },
    WikiChanges {
        limit: Option<u64>,
    },
    WikiSetName {
        name: String,
        time: Option<u64>,
    },
    WikiPeople,
    WikiBlock {
        author: String,
    },
    WikiUnblock {
        author: String,
    },
}

/// Handles one `wiki_…` request (`obj` still holds its `op`).
pub(crate) fn dispatch(
    wiki: &Wiki,
    me: PublicKey,
    obj: Map<String, Value>,
) -> Result<Value, RequestError> {
    let req: WikiRequest = serde_json::from_value(Value::Object(obj))
        .map_err(|e| RequestError::BadRequest(e.to_string()))?;
    let mut names = Names::new(wiki);
    Ok(match req {
        WikiRequest::WikiList => Value::Array(
            wiki.list()?
                .into_iter()
                .map(|p| {
                    json!({
                        "title": p.title.as_str(), "state": p.state(), "heads": p.heads,
                        "text": p.text, "redirect": p.redirect, "deleted": p.deleted,
                        "broken": p.broken,
                    })
                })
                .collect(),
        ),
        WikiRequest::WikiPage { title } => {
            let title = title_of(&title)?;
            let page = wiki.page(&title)?;
            let redirect = match page.versions.as_slice() {
                [v] => match &v.body {
                    Body::Redirect(t) => Some(t.as_str().to_owned()),
                    _ => None,
                },
                _ => None,
            };
            let heads: Vec<String> = page.versions.iter().map(|v| v.hash.to_hex()).collect();
            let versions: Vec<Value> = page
                .versions
                .iter()
                .map(|v| names.version(v))
                .collect::<Result<_, _>>()?;
            json!({
                "title": title.as_str(),
                "exists": page.exists(),
                "forked": page.is_forked(),
                "deleted": page.is_deleted(),
                "redirect": redirect,
                "hidden": page.hidden,
                "heads": heads,
                "versions": versions,
            })
        }
        WikiRequest::WikiTitles { titles } => {
            if titles.len() as u64 > MAX_PAGE {
                return Err(RequestError::BadInput(format!(
                    "at most {MAX_PAGE} titles at once"
                )));
            }
            let mut out = Vec::with_capacity(titles.len());
            for raw in &titles {
                out.push(match Title::new(raw) {
                    Err(_) => json!({"title": null, "state": "invalid"}),
                    Ok(t) => {
                        let page = wiki.page(&t)?;
                        let state = if !page.exists() {
                            "missing"
                        } else if page.is_forked() {
                            "forked"
                        } else if page.is_deleted() {
                            "deleted"
                        } else {
                            "ok"
                        };
                        json!({"title": t.as_str(), "state": state})
                    }
                });
            }
            Value::Array(out)
        }
        WikiRequest::WikiSave {
            title,
            text,
            summary,
            time,
            links,
        } => {
            let title = title_of(&title)?;
            let links = links
                .map(|l| l.iter().map(|h| hash_of(h)).collect::<Result<Vec<_>, _>>())
                .transpose()?;
            let opts = SaveOptions {
                summary,
                time,
                links,
            };
            json!({"hash": wiki.save(&title, &text, &opts)?.to_hex()})
        }
        WikiRequest::WikiHistory { title } => Value::Array(
            wiki.history(&title_of(&title)?)?
                .iter()
                .map(|v| names.version(v))
                .collect::<Result<_, _>>()?,
        ),
        WikiRequest::WikiDiff { title, a, b } => {
            let d = wiki.diff(&title_of(&title)?, &hash_of(&a)?, &hash_of(&b)?)?;
            json!({ "diff": d })
        }
        WikiRequest::WikiMerge { title } => {
            let m = wiki.merge(&title_of(&title)?)?;
            json!({
                "text": m.text,
                "conflicts": m.conflicts,
                "heads": m.heads.iter().map(Hash::to_hex).collect::<Vec<_>>(),
                "bases": m.bases.iter().map(|b| b.map(|h| h.to_hex())).collect::<Vec<_>>(),
            })
        }
        WikiRequest::WikiRevert {
            title,
            to,
            summary,
            time,
        } => {
            let h = wiki.revert(
                &title_of(&title)?,
                &hash_of(&to)?,
                &SaveOptions::new(summary, time),
            )?;
            json!({"hash": h.to_hex()})
        }
        WikiRequest::WikiRename {
            from,
            to,
            summary,
            time,
        } => {
            let (h, r) = wiki.rename(
                &title_of(&from)?,
                &title_of(&to)?,
                &SaveOptions::new(summary, time),
            )?;
            json!({"hash": h.to_hex(), "redirect": r.to_hex()})
        }
        WikiRequest::WikiDelete {
            title,
            summary,
            time,
        } => {
            let h = wiki.delete(&title_of(&title)?, &SaveOptions::new(summary, time))?;
            json!({"hash": h.to_hex()})
        }
        WikiRequest::WikiUndelete {
            title,
            summary,
            time,
        } => {
            let h = wiki.undelete(&title_of(&title)?, &SaveOptions::new(summary, time))?;
            json!({"hash": h.to_hex()})
        }
        WikiRequest::WikiSearch { query, limit } => {
            let limit = limit_of(limit, DEFAULT_HITS)?;
            Value::Array(
                wiki.search(&query, limit as usize)?
                    .into_iter()
                    .map(|h| json!({"title": h.title.as_str(), "score": h.score}))
                    .collect(),
            )
        }
        WikiRequest::WikiBacklinks { title } => json!(
            wiki.backlinks(&title_of(&title)?)?
                .iter()
                .map(Title::as_str)
                .collect::<Vec<_>>()
        ),
        WikiRequest::WikiChanges { limit } => {
            let limit = limit_of(limit, DEFAULT_CHANGES)?;
            let mut out = Vec::new();
            for c in wiki.changes(limit as usize)? {
                let mut o = c.to_json();
                o["name"] = names.of(c.author)?;
                out.push(o);
            }
            Value::Array(out)
        }
        WikiRequest::WikiSetName { name, time } => {
            json!({"hash": wiki.set_name(&name, time)?.to_hex()})
        }
        WikiRequest::WikiPeople => {
            let blocked: BTreeSet<PublicKey> = wiki.blocked()?.into_iter().collect();
            let mut keys: BTreeSet<PublicKey> = blocked.clone();
            keys.insert(me);
            for c in wiki.changes(PEOPLE_FROM_CHANGES)? {
                keys.extend(c.author);
            }
            let mut out = Vec::new();
            for k in keys {
                out.push(json!({
                    "key": k.to_hex(),
                    "name": names.of(Some(k))?,
                    "me": k == me,
                    "blocked": blocked.contains(&k),
                }));
            }
            Value::Array(out)
        }
        WikiRequest::WikiBlock { author } => {
            wiki.block(&key_of(&author)?)?;
            blocked_json(wiki)?
        }
        WikiRequest::WikiUnblock { author } => {
            wiki.unblock(&key_of(&author)?)?;
            blocked_json(wiki)?
        }
    })
}

fn blocked_json(wiki: &Wiki) -> Result<Value, RequestError> {
    let b: Vec<String> = wiki.blocked()?.iter().map(PublicKey::to_hex).collect();
    Ok(json!({ "blocked": b }))
}

/// Display names looked up once per author within a request.
struct Names<'a> {
    wiki: &'a Wiki,
    seen: BTreeMap<PublicKey, Value>,
}

impl<'a> Names<'a> {
    fn new(wiki: &'a Wiki) -> Names<'a> {
        Names {
            wiki,
            seen: BTreeMap::new(),
        }
    }

    fn of(&mut self, author: Option<PublicKey>) -> Result<Value, RequestError> {
        let Some(a) = author else {
            return Ok(Value::Null);
        };
        if let Some(v) = self.seen.get(&a) {
            return Ok(v.clone());
        }
        let v = json!(self.wiki.name_of(&a)?);
        self.seen.insert(a, v.clone());
        Ok(v)
    }

    fn version(&mut self, v: &Version) -> Result<Value, RequestError> {
        let mut o = v.to_json();
        o["name"] = self.of(v.author)?;
        o["verified"] = json!(v.author.is_some());
        Ok(o)
    }
}

fn title_of(s: &str) -> Result<Title, RequestError> {
    Title::new(s).map_err(|e| RequestError::BadInput(format!("title: {e}")))
}

fn hash_of(s: &str) -> Result<Hash, RequestError> {
    Hash::from_hex(s).map_err(|e| RequestError::BadInput(format!("version: {e}")))
}

fn key_of(s: &str) -> Result<PublicKey, RequestError> {
    PublicKey::from_hex(s).map_err(|e| RequestError::BadInput(format!("author: {e}")))
}

fn limit_of(limit: Option<u64>, default: u64) -> Result<u64, RequestError> {
    match limit.unwrap_or(default) {
        0 => Err(RequestError::BadInput("limit must be at least 1".into())),
        l if l > MAX_PAGE => Err(RequestError::BadInput(format!(
            "limit {l} is over {MAX_PAGE}"
        ))),
        l => Ok(l),
    }
}
