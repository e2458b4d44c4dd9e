//! Page titles: how a user's text becomes the one spelling a page is stored under.

use std::fmt;

/// Longest title, in characters (after normalization).
pub const MAX_TITLE_CHARS: usize = 200;

/// Characters a title may not contain: wiki-link syntax (`[ ] |`), fragment and markup
/// characters (`# < > { }`), and path separators (`/ \`), so a title is never a path.
const FORBIDDEN: &[char] = &['[', ']', '|', '#', '<', '>', '{', '}', '/', '\\'];

/// A normalized page title. Built only by [`Title::new`], so every `Title` is valid.
///
/// Normalization (what makes `[[wiki  links]]` resolve to `Wiki links`):
/// 1. underscores become spaces; runs of whitespace collapse to one space; both ends trimmed;
/// 2. the first character is upper-cased (as MediaWiki), the rest is kept as written;
/// 3. the result must be 1 to [`MAX_TITLE_CHARS`] characters, contain no control character
///    and none of `[ ] | # < > { } / \`, and not start with `.` (so `../../etc` is refused).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Title(String);

/// Why a text is not a page title.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TitleError {
    /// Nothing is left after trimming.
    #[error("a page title cannot be empty")]
    Empty,
    /// Longer than [`MAX_TITLE_CHARS`].
    #[error("a page title has at most {MAX_TITLE_CHARS} characters")]
    TooLong,
    /// A control character.
    #[error("a page title cannot contain control characters")]
    Control,
    /// A character of `[ ] | # < > { } / \`.
    #[error("a page title cannot contain {0:?}")]
    Forbidden(char),
    /// Starts with a dot.
    #[error("a page title cannot start with '.'")]
    LeadingDot,
}

impl Title {
    /// Normalizes `raw` into a title, or says why it cannot be one.
    pub fn new(raw: &str) -> Result<Title, TitleError> {
        let mut out = String::with_capacity(raw.len().min(4 * MAX_TITLE_CHARS));
        let mut space = false;
        let mut chars = 0usize;
        for c in raw.chars() {
            if c.is_whitespace() || c == '_' {
                space = !out.is_empty();
                continue;
            }
            if c.is_control() {
                return Err(TitleError::Control);
            }
            if FORBIDDEN.contains(&c) {
                return Err(TitleError::Forbidden(c));
            }
            if space {
                out.push(' ');
                chars += 1;
                space = false;
            }
            if out.is_empty() {
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(u), None) => out.push(u),
                    _ => out.push(c),
                }
            } else {
                out.push(c);
            }
            chars += 1;
            if chars > MAX_TITLE_CHARS {
                return Err(TitleError::TooLong);
            }
        }
        if out.is_empty() {
            return Err(TitleError::Empty);
        }
        if out.starts_with('.') {
            return Err(TitleError::LeadingDot);
        }
        Ok(Title(out))
    }

    /// A title only if `s` is already normalized (how stored keys are read: a key whose
    /// title is not in normal form was not written by a wiki and is left out).
    pub fn exact(s: &str) -> Option<Title> {
        Title::new(s).ok().filter(|t| t.0 == s)
    }

    /// The title as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kv key of the page: `page/<title>`.
    pub fn key(&self) -> String {
        format!("{PAGE_PREFIX}{}", self.0)
    }
}

/// The prefix of page keys in the kv store.
pub const PAGE_PREFIX: &str = "page/";

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Title {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Title {
    type Err = TitleError;
    fn from_str(s: &str) -> Result<Title, TitleError> {
        Title::new(s)
    }
}

/// The targets of the `[[Target]]` and `[[Target|label]]` links in `text`, normalized, in
/// order of first appearance, without duplicates; links that are not valid titles are left
/// out. At most `max` targets.
pub fn wiki_links(text: &str, max: usize) -> Vec<Title> {
    let mut out: Vec<Title> = Vec::new();
    let mut rest = text;
    while out.len() < max {
        let Some(start) = rest.find("[[") else { break };
        let after = &rest[start + 2..];
        let Some(end) = after.find("]]") else { break };
        let inner = &after[..end];
        // A nested `[[` means the first one was not a link: start again from it.
        if let Some(nested) = inner.find("[[") {
            rest = &after[nested..];
            continue;
        }
        let target = inner.split('|').next().unwrap_or_default();
        if let Ok(t) = Title::new(target)
            && !out.contains(&t)
        {
            out.push(t);
        }
        rest = &after[end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(
            Title::new("  wiki__links  here ").unwrap().as_str(),
            "Wiki links here"
        );
        assert_eq!(Title::new("éclair").unwrap().as_str(), "Éclair");
        assert_eq!(
            Title::new("ß").unwrap().as_str(),
            "ß",
            "no one-to-many case change"
        );
        assert_eq!(Title::new(""), Err(TitleError::Empty));
        assert_eq!(Title::new(" _ "), Err(TitleError::Empty));
        assert_eq!(Title::new("../../etc"), Err(TitleError::Forbidden('/')));
        assert_eq!(Title::new(".hidden"), Err(TitleError::LeadingDot));
        assert_eq!(Title::new("a\u{7}b"), Err(TitleError::Control));
        assert_eq!(Title::new("a[b"), Err(TitleError::Forbidden('[')));
        assert!(Title::new(&"x".repeat(MAX_TITLE_CHARS)).is_ok());
        assert_eq!(
            Title::new(&"x".repeat(MAX_TITLE_CHARS + 1)),
            Err(TitleError::TooLong)
        );
        assert_eq!(Title::exact("Cairn"), Some(Title::new("cairn").unwrap()));
        assert_eq!(Title::exact("cairn"), None);
        assert_eq!(Title::exact("A  b"), None);
    }

    #[test]
    fn finds_links() {
        let t = "See [[cairn]], [[Stone  pile|piles]] and [[cairn]]; not [[a/b]] nor [[ ]] \
                 nor [[x [[Inner]] or [[unclosed";
        let got: Vec<String> = wiki_links(t, 100).into_iter().map(|t| t.0).collect();
        assert_eq!(got, ["Cairn", "Stone pile", "Inner"]);
        assert_eq!(wiki_links(t, 1).len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn normal_form_is_stable(s in "\\PC{0,60}") {
            if let Ok(t) = Title::new(&s) {
                proptest::prop_assert_eq!(Title::new(t.as_str()), Ok(t.clone()));
                proptest::prop_assert_eq!(Title::exact(t.as_str()), Some(t.clone()));
                proptest::prop_assert!(!t.as_str().contains('/'));
            }
        }

        #[test]
        fn links_never_panic(s in "(\\[|\\]|\\||[a-z ]){0,80}") {
            for t in wiki_links(&s, 64) {
                proptest::prop_assert_eq!(Title::exact(t.as_str()), Some(t.clone()));
            }
        }
    }
}
