//! Diffs between versions (`similar`) and three-way merges of forks (`diffy`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_log::core::Hash;

use crate::doc::Body;
use crate::wiki::Version;

/// A unified diff (lines) from `old` to `new`, with the given labels in its header; empty
/// when the texts are equal.
pub fn diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let d = similar::TextDiff::from_lines(old, new);
    if d.ratio() == 1.0 && old == new {
        return String::new();
    }
    d.unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

/// The result of merging a page's current versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged text, with conflict markers (`<<<<<<<`, `=======`, `>>>>>>>`) where the
    /// versions changed the same lines differently.
    pub text: String,
    /// Number of conflicts marked in `text`.
    pub conflicts: usize,
    /// The current versions merged (saving the text should link exactly these).
    pub heads: Vec<Hash>,
    /// For each version folded in after the first, the common ancestor used as the base
    /// (`None`: no common text version, the empty text was the base).
    pub bases: Vec<Option<Hash>>,
}

/// Ancestors of `start` (itself included) in the DAG of `versions` (by hash).
fn ancestors(start: Hash, by_hash: &HashMap<Hash, &Version>) -> BTreeSet<Hash> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(h) = stack.pop() {
        if !seen.insert(h) {
            continue;
        }
        if let Some(v) = by_hash.get(&h) {
            stack.extend(v.parents.iter().copied());
        }
    }
    seen
}

/// Merges the current versions `heads` of a page whose whole history is `history` (as
/// [`Wiki::history`](crate::Wiki::history) returns it). Text versions are folded in one at a
/// time, in ascending hash order (so every peer computes the same merge): each into the
/// merge so far, three-way, from their common ancestor — the common text version applied
/// deepest in the DAG (longest path from a root; ties by hash) among the ancestors both
/// share, which no other shared one descends from and which every peer picks alike. Deleted, redirect and
/// broken heads bring no text (saving the merge supersedes them too).
pub fn merge(heads: &[Version], history: &[Version]) -> Merged {
    let by_hash: HashMap<Hash, &Version> = history.iter().map(|v| (v.hash, v)).collect();
    // Depth in the DAG: change order is topological, so parents come first.
    let mut order: Vec<&Version> = history.iter().collect();
    order.sort_unstable_by_key(|v| v.change);
    let mut depth: HashMap<Hash, u64> = HashMap::with_capacity(order.len());
    for v in order {
        let d = v
            .parents
            .iter()
            .filter_map(|p| depth.get(p))
            .max()
            .map_or(0, |d| d + 1);
        depth.insert(v.hash, d);
    }
    let mut texts: BTreeMap<Hash, &str> = BTreeMap::new();
    for h in heads {
        if let Body::Text(t) = &h.body {
            texts.insert(h.hash, t);
        }
    }
    let mut out = Merged {
        text: String::new(),
        conflicts: 0,
        heads: heads.iter().map(|v| v.hash).collect(),
        bases: Vec::new(),
    };
    out.heads.sort_unstable();
    let mut iter = texts.into_iter();
    let Some((first, text)) = iter.next() else {
        return out;
    };
    let mut acc = text.to_owned();
    // Everything the merge so far descends from.
    let mut acc_anc = ancestors(first, &by_hash);
    for (h, text) in iter {
        let anc = ancestors(h, &by_hash);
        let base = acc_anc
            .intersection(&anc)
            .filter_map(|a| by_hash.get(a))
            .filter(|v| matches!(v.body, Body::Text(_)))
            .max_by_key(|v| (depth.get(&v.hash).copied().unwrap_or(0), v.hash))
            .map(|v| (v.hash, v.body.text().unwrap_or_default()));
        let base_text = base.map_or("", |b| b.1);
        out.bases.push(base.map(|b| b.0));
        acc = match diffy::merge(base_text, &acc, text) {
            Ok(m) => m,
            Err(m) => m,
        };
        acc_anc.extend(anc);
    }
    out.conflicts = acc.lines().filter(|l| l.starts_with("<<<<<<<")).count();
    out.text = acc;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs() {
        assert_eq!(diff("a\n", "a\n", "x", "y"), "");
        let d = diff("a\nb\n", "a\nc\n", "x", "y");
        assert!(d.contains("--- x") && d.contains("+++ y"), "{d}");
        assert!(d.contains("-b\n") && d.contains("+c\n"), "{d}");
    }
}
