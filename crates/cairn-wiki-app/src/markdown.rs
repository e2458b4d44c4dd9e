//! Markdown to HTML with `[[Wiki Links]]`, sanitized at the event level: the page text of a
//! hostile peer can never run script, load remote content or bring its own markup.
//!
//! pulldown-cmark parses the text into events; each event is checked before the HTML writer
//! sees it:
//!
//! - raw HTML (blocks and inline) becomes text: shown, escaped, never markup;
//! - a link keeps its target only if it is `http:`, `https:` or `mailto:` (decoded, so
//!   entity tricks do not pass); any other link (`javascript:`, `data:`, relative, …) is
//!   rendered as its text alone;
//! - `[[Target]]` / `[[Target|label]]` become links to `#/page/<Title>` with the title the
//!   worker normalized, styled `missing` when the page does not exist; a target that is not a
//!   title is shown as text;
//! - an image is shown only from blobs: `blob:<64 hex digits>` (the form pages store,
//!   docs/FORMAT.md "Blob references": it names content, not a server, and keeps the blob
//!   from garbage collection) or `/blob/<hex>`; it is written `<img data-blob="<hex>">`,
//!   without a `src`: the app (`images.rs`) sets one from the worker's blob store (fetched
//!   from peers, verified, when missing) or from `cairn serve`'s `/blob/<hex>`. Any other
//!   image is replaced by its alt text in brackets (nothing is fetched);
//! - the writer escapes every text and attribute, and no event can carry a `style`, `class`
//!   or event-handler attribute, so nothing can run script or restyle the page.

use std::collections::HashMap;

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Longest text rendered, in bytes; the rest is cut (a 4 MiB hostile page stays cheap).
pub const MAX_RENDER_BYTES: usize = 512 * 1024;

/// What the worker said about a wiki link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// The normalized title; `None` when the text is not a title.
    pub title: Option<String>,
    /// `missing`, `ok`, `forked`, `deleted` or `invalid`.
    pub state: String,
}

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_WIKILINKS
}

fn cut(text: &str) -> &str {
    if text.len() <= MAX_RENDER_BYTES {
        return text;
    }
    let mut end = MAX_RENDER_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The raw targets of the wiki links in `text` (as written, in order, without duplicates).
pub fn wiki_targets(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ev in Parser::new_ext(cut(text), options()) {
        if let Event::Start(Tag::Link {
            link_type: LinkType::WikiLink { .. },
            dest_url,
            ..
        }) = ev
            && !out.iter().any(|t| t == dest_url.as_ref())
        {
            out.push(dest_url.into_string());
        }
    }
    out
}

/// Whether `url` may be a link's target: `http:`, `https:` or `mailto:` (case-insensitive).
pub fn safe_link(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

/// `![name](blob:<hash>)`, the alt text being the file's name without its extension and
/// without the characters that would end it.
pub fn image_markdown(file_name: &str, hash: &str) -> String {
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(s, _)| s)
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | '\\' | '\n' | '\r'))
        .take(100)
        .collect::<String>();
    let alt = if stem.trim().is_empty() {
        "image".to_owned()
    } else {
        stem
    };
    format!("![{alt}](blob:{hash})")
}

/// Whether `url` is an image this server serves: `/blob/` and 64 lower-case hex digits.
pub fn safe_image(url: &str) -> bool {
    url.strip_prefix("/blob/").is_some_and(is_blob_hex)
}

fn is_blob_hex(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The URL an image is shown from, if it may be: `blob:<hex>` (either case) becomes this
/// server's `/blob/<hex>`; `/blob/<hex>` stays; anything else is refused.
pub fn image_url(url: &str) -> Option<String> {
    if safe_image(url) {
        return Some(url.to_owned());
    }
    let hex = url.strip_prefix("blob:")?.to_ascii_lowercase();
    is_blob_hex(&hex).then(|| format!("/blob/{hex}"))
}

/// Percent-encodes a title for a URL fragment (everything but unreserved ASCII).
pub fn encode_title(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for b in title.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How a link or image start was rendered, so that its end matches.
enum Open {
    /// Kept as pulldown-cmark's own tag.
    Kept,
    /// Replaced by our own markup, closed by this text.
    Replaced(&'static str),
    /// Dropped: only its content is shown.
    Dropped,
}

/// Renders `text` as sanitized HTML; `targets` maps each raw wiki-link target (as
/// [`wiki_targets`] gives it) to what the worker said about it (unknown targets are shown as
/// text).
pub fn render(text: &str, targets: &HashMap<String, LinkTarget>) -> String {
    let mut open: Vec<Open> = Vec::new();
    let events = Parser::new_ext(cut(text), options()).filter_map(|ev| {
        Some(match ev {
            Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
            // An HTML block is shown as its text, in a preformatted block.
            Event::Start(Tag::HtmlBlock) => {
                Event::Start(Tag::CodeBlock(pulldown_cmark::CodeBlockKind::Indented))
            }
            Event::End(TagEnd::HtmlBlock) => Event::End(TagEnd::CodeBlock),
            Event::Start(Tag::Link {
                link_type: LinkType::WikiLink { .. },
                dest_url,
                ..
            }) => match targets.get(dest_url.as_ref()) {
                Some(LinkTarget {
                    title: Some(t),
                    state,
                }) => {
                    let class = if state == "missing" {
                        "wikilink missing"
                    } else {
                        "wikilink"
                    };
                    let tip = if state == "missing" {
                        format!(" title=\"{} (page does not exist yet)\"", escape(t))
                    } else {
                        String::new()
                    };
                    open.push(Open::Replaced("</a>"));
                    Event::InlineHtml(CowStr::from(format!(
                        "<a class=\"{class}\" href=\"#/page/{}\"{tip}>",
                        encode_title(t)
                    )))
                }
                _ => {
                    open.push(Open::Replaced("</span>"));
                    Event::InlineHtml(CowStr::Borrowed("<span class=\"badlink\">"))
                }
            },
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                if safe_link(&dest_url) {
                    open.push(Open::Kept);
                    Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    })
                } else {
                    open.push(Open::Dropped);
                    return None;
                }
            }
            Event::End(TagEnd::Link) => match open.pop() {
                Some(Open::Kept) => Event::End(TagEnd::Link),
                Some(Open::Replaced(close)) => Event::InlineHtml(CowStr::Borrowed(close)),
                Some(Open::Dropped) | None => return None,
            },
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                if let Some(url) = image_url(&dest_url) {
                    open.push(Open::Kept);
                    Event::Start(Tag::Image {
                        link_type,
                        dest_url: CowStr::from(url),
                        title,
                        id,
                    })
                } else {
                    open.push(Open::Replaced("]</span>"));
                    Event::InlineHtml(CowStr::Borrowed("<span class=\"noimg\">[image: "))
                }
            }
            Event::End(TagEnd::Image) => match open.pop() {
                Some(Open::Kept) => Event::End(TagEnd::Image),
                Some(Open::Replaced(close)) => Event::InlineHtml(CowStr::Borrowed(close)),
                Some(Open::Dropped) | None => return None,
            },
            other => other,
        })
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    // Every `<img` here is one the writer made for a kept image (raw HTML became escaped
    // text): its `src` is always `/blob/<hex>`. The app sets the real `src`.
    let mut html = html.replace("<img src=\"/blob/", "<img data-blob=\"");
    if text.len() > MAX_RENDER_BYTES {
        html.push_str("<p class=\"cut\">(the rest of this page is too long to show)</p>");
    }
    html
}
