//! The app's URLs: hash routes, so that any static server (the node test server, `cairn
//! serve --web DIR`) serves the app from one `index.html` and a link can be shared or
//! reloaded without the server knowing the app's paths.
//!
//! | URL | screen |
//! |---|---|
//! | `#/` | the page `Home` |
//! | `#/page/Title` | a page (also when it does not exist yet: one click to create it) |
//! | `#/edit/Title` | the editor with live preview (a fork: the three-way merge proposal) |
//! | `#/history/Title` | the page's history: diffs, revert |
//! | `#/diff/Title/A/B` | the diff from version A to version B |
//! | `#/changes` | recent changes |
//! | `#/search/query` | search results |
//! | `#/pages` | every page |
//! | `#/people` | display names, the block list |
//!
//! Titles and queries are percent-encoded ([`encode_title`](crate::markdown::encode_title)).

use crate::markdown::encode_title;

/// Where the app is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A page.
    Page(String),
    /// Editing a page.
    Edit(String),
    /// A page's history.
    History(String),
    /// A diff of a page between two versions (hex).
    Diff(String, String, String),
    /// Recent changes.
    Changes,
    /// Search results.
    Search(String),
    /// The page list.
    Pages,
    /// People.
    People,
}

/// The page shown at `#/`.
pub const HOME: &str = "Home";

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Route {
    /// The route of a location hash (`#/page/Home`, with or without the `#`); anything
    /// unknown is the home page.
    pub fn parse(hash: &str) -> Route {
        let h = hash.trim_start_matches('#').trim_start_matches('/');
        let (head, rest) = h.split_once('/').unwrap_or((h, ""));
        match head {
            "page" if !rest.is_empty() => Route::Page(decode(rest)),
            "edit" if !rest.is_empty() => Route::Edit(decode(rest)),
            "history" if !rest.is_empty() => Route::History(decode(rest)),
            "diff" => {
                let mut parts = rest.rsplitn(3, '/');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(b), Some(a), Some(t)) => Route::Diff(decode(t), decode(a), decode(b)),
                    _ => Route::Page(HOME.into()),
                }
            }
            "changes" => Route::Changes,
            "search" => Route::Search(decode(rest)),
            "pages" => Route::Pages,
            "people" => Route::People,
            _ => Route::Page(HOME.into()),
        }
    }

    /// The hash of this route (`#/page/Home`).
    pub fn href(&self) -> String {
        match self {
            Route::Page(t) => format!("#/page/{}", encode_title(t)),
            Route::Edit(t) => format!("#/edit/{}", encode_title(t)),
            Route::History(t) => format!("#/history/{}", encode_title(t)),
            Route::Diff(t, a, b) => format!("#/diff/{}/{a}/{b}", encode_title(t)),
            Route::Changes => "#/changes".into(),
            Route::Search(q) => format!("#/search/{}", encode_title(q)),
            Route::Pages => "#/pages".into(),
            Route::People => "#/people".into(),
        }
    }
}
