//! The Markdown renderer's sanitizing, natively (the browser test wiki.mjs checks the same
//! page renders inert in Chromium), and the routes.

use std::collections::HashMap;

use cairn_wiki_app::markdown::{
    LinkTarget, image_markdown, render, safe_image, safe_link, wiki_targets,
};
use cairn_wiki_app::route::Route;
use proptest::prelude::*;

fn targets(pairs: &[(&str, Option<&str>, &str)]) -> HashMap<String, LinkTarget> {
    pairs
        .iter()
        .map(|(raw, t, state)| {
            (
                raw.to_string(),
                LinkTarget {
                    title: t.map(str::to_owned),
                    state: state.to_string(),
                },
            )
        })
        .collect()
}

#[test]
fn wiki_links_point_at_normalized_titles_and_missing_pages_are_marked() {
    let text = "See [[stone  pile]], [[Home|the start]] and [[a/b]].";
    assert_eq!(wiki_targets(text), ["stone  pile", "Home", "a/b"]);
    let t = targets(&[
        ("stone  pile", Some("Stone pile"), "missing"),
        ("Home", Some("Home"), "ok"),
        ("a/b", None, "invalid"),
    ]);
    let html = render(text, &t);
    assert!(
        html.contains(r##"<a class="wikilink missing" href="#/page/Stone%20pile""##),
        "{html}"
    );
    assert!(
        html.contains(r##"<a class="wikilink" href="#/page/Home">the start</a>"##),
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="badlink">a/b</span>"#),
        "{html}"
    );
}

#[test]
fn raw_html_scripts_and_handlers_are_text() {
    let html = render(
        "<script>alert(1)</script>\n\nInline <b onclick=\"x()\">b</b> <img src=x onerror=alert(1)>",
        &HashMap::new(),
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b "), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
}

#[test]
fn only_http_https_mailto_links_and_blob_images() {
    let html = render(
        "[a](javascript:alert(1)) [b](jav&#x61;script:alert(1)) [c](data:text/html,x) \
         [d](https://example.org/) [e](mailto:a@b.c) [f](/relative) [g]( JavaScript:x)\n\n\
         ![r](http://remote.invalid/x.png) ![ok](/blob/{h})",
        &HashMap::new(),
    )
    .replace("{h}", "");
    let hrefs: Vec<&str> = html
        .split("href=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(hrefs, ["https://example.org/", "mailto:a@b.c"], "{html}");
    assert!(
        html.contains(r#"<span class="noimg">[image: r]</span>"#),
        "{html}"
    );
    let blob = format!("![ok](/blob/{})", "ab".repeat(32));
    let html = render(&blob, &HashMap::new());
    assert!(
        html.contains(&format!(r#"<img data-blob="{}" alt="ok""#, "ab".repeat(32)))
            && !html.contains("src="),
        "{html}"
    );
    assert!(safe_link("HTTPS://x") && !safe_link("javascript:x") && !safe_link("//x"));
    // The stored form, `blob:<hex>`, is shown from this server.
    let stored = render(&format!("![ok](blob:{})", "AB".repeat(32)), &HashMap::new());
    assert!(
        stored.contains(&format!(r#"<img data-blob="{}" alt="ok""#, "ab".repeat(32))),
        "{stored}"
    );
    let short = render("![no](blob:abcd)", &HashMap::new());
    assert!(!short.contains("<img"), "{short}");
    assert!(!safe_image("/blob/../x") && !safe_image(&format!("/blob/{}", "AB".repeat(32))));
}

#[test]
fn routes_round_trip() {
    for r in [
        Route::Page("Home".into()),
        Route::Page("Stone pile? 100% & more".into()),
        Route::Edit("Émile".into()),
        Route::History("A b".into()),
        Route::Diff("A b".into(), "ab".repeat(32), "cd".repeat(32)),
        Route::Changes,
        Route::Search("two words".into()),
        Route::Pages,
        Route::People,
    ] {
        assert_eq!(Route::parse(&r.href()), r);
    }
    assert_eq!(Route::parse(""), Route::Page("Home".into()));
    assert_eq!(Route::parse("#/nonsense/%zz"), Route::Page("Home".into()));
    assert_eq!(Route::parse("#/page/a%zz"), Route::Page("a%zz".into()));
}

/// The tags of `html` (the renderer escapes every `<` of the text, so each `<` starts a tag)
/// as (name, [(attribute, value)]); `None` when a tag does not parse as name="value" pairs.
type Tag = (String, Vec<(String, String)>);

fn tags(html: &str) -> Option<Vec<Tag>> {
    let mut out = Vec::new();
    for part in html.split('<').skip(1) {
        let tag = &part[..part.find('>')?];
        let tag = tag.trim_end_matches('/').trim_end();
        let (name, mut rest) = tag.split_once(' ').unwrap_or((tag, ""));
        let mut attrs = Vec::new();
        while !rest.trim().is_empty() {
            rest = rest.trim_start();
            let eq = rest.find('=');
            let sp = rest.find(' ').unwrap_or(rest.len());
            match eq {
                Some(e) if e < sp => {
                    let after = rest[e + 1..].strip_prefix('"')?;
                    let end = after.find('"')?;
                    attrs.push((rest[..e].to_owned(), after[..end].to_owned()));
                    rest = &after[end + 1..];
                }
                _ => {
                    attrs.push((rest[..sp].to_owned(), String::new()));
                    rest = &rest[sp..];
                }
            }
        }
        out.push((name.trim_start_matches('/').to_owned(), attrs));
    }
    Some(out)
}

const TAGS: &[&str] = &[
    "p",
    "a",
    "span",
    "em",
    "strong",
    "del",
    "code",
    "pre",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "blockquote",
    "hr",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "input",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Whatever the text (every wiki link taken as an existing page named as written), the
    /// output has no markup but the renderer's own: known tags only, no script, no event
    /// handler, no style but table alignment, links only http(s), mailto and `#/page/`, no
    /// image (none of these texts names a blob).
    #[test]
    fn any_text_renders_inert(text in "([<>\"'=/!()\\[\\]|:a-z &#;*`\n-]|<script>|javascript:|onerror=|style=|https://|!\\[x\\]\\(|\\[\\[){0,80}") {
        let t: HashMap<String, LinkTarget> = wiki_targets(&text)
            .into_iter()
            .map(|raw| (raw.clone(), LinkTarget { title: Some(raw), state: "ok".into() }))
            .collect();
        let html = render(&text, &t);
        let tags = tags(&html);
        prop_assert!(tags.is_some(), "{}", html);
        for (name, attrs) in tags.unwrap_or_default() {
            prop_assert!(TAGS.contains(&name.as_str()), "tag {} in {}", name, html);
            for (a, v) in attrs {
                match a.as_str() {
                    "href" => prop_assert!(safe_link(&v) || v.starts_with("#/page/"), "{}", html),
                    "style" => prop_assert!(v.starts_with("text-align:"), "{}", html),
                    "class" | "title" | "type" | "checked" | "disabled" | "start" => {}
                    _ => prop_assert!(false, "attribute {} in {}", a, html),
                }
            }
        }
        let _ = Route::parse(&text);
    }
}

#[test]
fn an_added_image_is_markdown_that_renders_as_a_blob_image() {
    let h = "0f".repeat(32);
    assert_eq!(
        image_markdown("photo.png", &h),
        format!("![photo](blob:{h})")
    );
    // Characters that would end the alt text go; an empty stem becomes "image".
    assert_eq!(
        image_markdown("a]b[c\\.d.jpg", &h),
        format!("![abc.d](blob:{h})")
    );
    assert_eq!(image_markdown(".png", &h), format!("![image](blob:{h})"));
    let html = render(
        &image_markdown("x](javascript:1) y.png", &h),
        &HashMap::new(),
    );
    assert!(
        html.contains(&format!(r#"<img data-blob="{h}" alt="x(javascript:1) y""#)),
        "{html}"
    );
}
