//! Words for the search index.

use std::collections::BTreeMap;

/// Bytes of a version's text that are indexed for search and scanned for links (the start
/// of the text; the rest of a huge page is kept and shown, not indexed).
pub const MAX_INDEXED_BYTES: usize = 256 << 10;
/// Distinct words indexed per version (the first ones found).
pub const MAX_TERMS: usize = 4096;
/// Longest indexed word, in characters (longer runs are not words people search for).
pub const MAX_WORD_CHARS: usize = 40;
/// Links indexed per version.
pub const MAX_LINKS: usize = 1024;
/// How much a word of the title counts, in occurrences of the word in the text.
pub const TITLE_WEIGHT: u32 = 5;

/// The start of `text`, at most `max` bytes, cut on a character boundary.
pub(crate) fn head_of(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The lower-cased words of `text`: maximal runs of alphanumeric characters.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.chars().count() <= MAX_WORD_CHARS)
        .map(str::to_lowercase)
}

/// The indexed words of a version with their weights (occurrences, title words counting
/// [`TITLE_WEIGHT`] each).
pub(crate) fn terms(title: &str, text: &str) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    for w in words(title) {
        *out.entry(w).or_default() += TITLE_WEIGHT;
    }
    for w in words(head_of(text, MAX_INDEXED_BYTES)) {
        if out.len() >= MAX_TERMS && !out.contains_key(&w) {
            continue;
        }
        let n = out.entry(w).or_default();
        *n = n.saturating_add(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_terms() {
        let w: Vec<String> = words("Cairns, stacked STONES; cairn-building 2x").collect();
        assert_eq!(
            w,
            ["cairns", "stacked", "stones", "cairn", "building", "2x"]
        );
        let t = terms("Cairn", "a cairn, a CAIRN");
        assert_eq!(t["cairn"], TITLE_WEIGHT + 2);
        assert_eq!(t["a"], 2);
        assert_eq!(head_of("ééé", 3), "é");
        let long = "x".repeat(MAX_WORD_CHARS + 1);
        assert_eq!(words(&long).count(), 0);
    }
}
