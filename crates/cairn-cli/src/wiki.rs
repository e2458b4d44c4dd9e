//! `cairn wiki …`: the peer-to-peer wiki (crate cairn-wiki) on the store's log.
//!
//! A command opens the store itself, or, while `cairn serve` holds it, runs in the server
//! (through `DATA/cairn.sock`, `crate::exec`): the same code either way, on a [`Ctx`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Component, Path};

use anyhow::{Context, Result, bail};
use cairn_blob::{BlobHash, BlobStore};
use cairn_core::{Hash, PublicKey};
use cairn_wiki::{Body, Page, SaveOptions, Title, Version, Wiki};
use clap::{Args, Subcommand};

use crate::exec::{Ctx, Inputs};

/// Results of `search` and `changes` when no `--limit` is given.
const DEFAULT_LIMIT: usize = 50;

#[derive(Args)]
pub(crate) struct WikiArgs {
    /// Print JSON (one document, or one per line for lists) for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: WikiCommand,
}

#[derive(Subcommand)]
enum WikiCommand {
    /// Every page with its state (ok, forked, deleted, redirect, broken).
    List,
    /// A page's text; a forked page prints every current version and says so.
    Show {
        /// The page's title.
        title: String,
    },
    /// Save a new version of a page from FILE (or `-`, the default: standard input); it
    /// supersedes every current version, so saving a forked page merges it. Prints the hash.
    Edit {
        /// The page's title.
        title: String,
        /// The new text: a file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// The edit summary.
        #[arg(long, short, default_value = "")]
        summary: String,
    },
    /// Every version of a page, newest first: hash, time (UTC, as its editor claims; `--json`:
    /// milliseconds since the Unix epoch), author, kind, summary.
    History {
        /// The page's title.
        title: String,
    },
    /// A unified diff between two versions (hashes or unique hash prefixes). Without B: from
    /// A to the current version; without either: the current version against its parent,
    /// or, for a forked page, the first two current versions.
    Diff {
        /// The page's title.
        title: String,
        /// The older version.
        a: Option<String>,
        /// The newer version.
        b: Option<String>,
    },
    /// The three-way merge of a forked page's current versions, conflicts marked; `--save`
    /// saves it as the new version.
    Merge {
        /// The page's title.
        title: String,
        /// Save the merge (refused while it has conflicts, unless --force).
        #[arg(long)]
        save: bool,
        /// Save even with conflict markers in the text.
        #[arg(long, requires = "save")]
        force: bool,
        /// The edit summary when saving.
        #[arg(long, short, default_value = "merge")]
        summary: String,
    },
    /// Save the text of an earlier version again (a new version).
    Revert {
        /// The page's title.
        title: String,
        /// The version to restore (hash or unique prefix).
        version: String,
        /// The edit summary.
        #[arg(long, short)]
        summary: Option<String>,
    },
    /// Delete a page (a visible tombstone; `undelete` or any edit brings it back).
    Delete {
        /// The page's title.
        title: String,
        /// The edit summary.
        #[arg(long, short, default_value = "")]
        summary: String,
    },
    /// Restore the newest text of a deleted page.
    Undelete {
        /// The page's title.
        title: String,
    },
    /// Rename a page: its history goes on under the new title; the old one redirects.
    Rename {
        /// The current title.
        from: String,
        /// The new title.
        to: String,
    },
    /// Full-text search (every word must match, as a prefix), best first.
    Search {
        /// The words to find.
        query: String,
        /// At most this many results.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The pages that link to a page ("what links here").
    Backlinks {
        /// The page's title.
        title: String,
    },
    /// Recent changes across the wiki, newest first (by the time each editor claims, shown in
    /// UTC; `--json`: milliseconds since the Unix epoch).
    Changes {
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
        /// Only the edits of this author (public key, hex).
        #[arg(long)]
        author: Option<PublicKey>,
    },
    /// Set this store's display name (a record only its owner can change).
    Name {
        /// The name.
        name: String,
    },
    /// Hide an author's edits in this store's views (local: never replicated).
    Block {
        /// The author's public key (hex).
        author: PublicKey,
    },
    /// Show an author's edits again.
    Unblock {
        /// The author's public key (hex).
        author: PublicKey,
    },
    /// Load Markdown files (`<Title>.md`) from DIR as pages; unchanged pages are skipped. An
    /// image with a relative path to a file inside DIR (`![x](images/a.png)`) is added as a
    /// blob and named `blob:<hash>` in the page.
    Import {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// Write every page with text to DIR as `<Title>.md` (a forked page: its merge); each
    /// image blob a page names is written to DIR/images/<hash>.<ext> and named by that path.
    Export {
        /// The directory (created if missing).
        dir: std::path::PathBuf,
    },
}

/// What a command reads from files or standard input (a client of a running server reads
/// it and sends it along).
pub(crate) fn inputs(args: &WikiArgs) -> Inputs {
    match &args.cmd {
        WikiCommand::Edit { file, .. } => Inputs {
            files: vec![file.clone()],
            ..Inputs::default()
        },
        WikiCommand::Import { dir } => Inputs {
            dirs: vec![(absolute(dir), |n| title_of_file(n).is_some())],
            ..Inputs::default()
        },
        _ => Inputs::default(),
    }
}

/// `dir` made absolute (as given if it cannot be).
fn absolute(dir: &Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// The command line a running server is sent instead of this process's, when the command
/// names a directory (`import`, `export`): with it absolute, as the server reads and writes
/// images there itself.
pub(crate) fn served_argv(args: &WikiArgs) -> Option<Vec<String>> {
    let (cmd, dir) = match &args.cmd {
        WikiCommand::Import { dir } => ("import", dir),
        WikiCommand::Export { dir } => ("export", dir),
        _ => return None,
    };
    let mut argv = vec!["wiki".to_owned()];
    if args.json {
        argv.push("--json".into());
    }
    argv.extend([cmd.to_owned(), absolute(dir)]);
    Some(argv)
}

/// The byte ranges of the targets of the Markdown images in `text` (`![alt](target)`, an
/// optional title after the target left out), outside fenced code blocks and code spans.
fn image_targets(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut fence: Option<&str> = None;
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let at = start;
        start += line.len();
        let t = line.trim_start();
        if let Some(f) = fence {
            if t.starts_with(f) {
                fence = None;
            }
            continue;
        }
        if t.starts_with("```") || t.starts_with("~~~") {
            fence = Some(&t[..3]);
            continue;
        }
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'`' {
                let run = b[i..].iter().take_while(|&&c| c == b'`').count();
                let tick = &line[i..i + run];
                match line[i + run..].find(tick) {
                    Some(end) => i += run + end + run,
                    None => i += run,
                }
                continue;
            }
            // Bytes, not `&line[i..]`: `i` may be inside a multi-byte character.
            if b[i..].starts_with(b"![")
                && let Some(close) = line[i + 2..].find(']')
                && line[i + 2 + close + 1..].starts_with('(')
                && let Some(end) = line[i + 2 + close + 2..].find(')')
            {
                let open = i + 2 + close + 2;
                let inner = &line[open..open + end];
                let lead = inner.len() - inner.trim_start().len();
                let len = inner[lead..]
                    .find(char::is_whitespace)
                    .unwrap_or(inner.len() - lead);
                if len > 0 {
                    found.push(at + open + lead..at + open + lead + len);
                }
                i = open + end + 1;
                continue;
            }
            i += 1;
        }
    }
    found
}

/// `text` with each image target replaced by what `f` gives for it (`None`: kept).
fn rewrite_images(text: &str, mut f: impl FnMut(&str) -> Result<Option<String>>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in image_targets(text) {
        out.push_str(&text[last..r.start]);
        match f(&text[r.clone()])? {
            Some(new) => out.push_str(&new),
            None => out.push_str(&text[r.clone()]),
        }
        last = r.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// An image target that names a file by a relative path (not a URL, not absolute); the
/// caller checks on its real path that it is inside the imported directory.
fn relative_file(target: &str) -> Option<&Path> {
    let p = Path::new(target);
    let plain = !target.contains(':') && !target.starts_with('#') && !target.starts_with('?');
    (plain
        && p.components()
            .all(|c| !matches!(c, Component::RootDir | Component::Prefix(_))))
    .then_some(p)
}

/// The file extension for a blob's first bytes: the image formats a page shows, else `bin`.
fn sniff(head: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        "jpg"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        "gif"
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        "webp"
    } else if text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg")) {
        "svg"
    } else {
        "bin"
    }
}

fn title(s: &str) -> Result<Title> {
    Title::new(s).with_context(|| format!("{s:?} is not a page title"))
}

fn now_ms() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}

/// A time in milliseconds since the Unix epoch as UTC, to the minute: `2026-12-02 05:20`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (all unsigned here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn save_opts(summary: &str) -> SaveOptions {
    SaveOptions::new(summary, now_ms())
}

/// A version named by hash or unique hash prefix, among `history`.
fn pick<'a>(history: &'a [Version], title: &Title, prefix: &str) -> Result<&'a Version> {
    let prefix = prefix.to_ascii_lowercase();
    let found: Vec<&Version> = history
        .iter()
        .filter(|v| v.hash.to_hex().starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [v] => Ok(v),
        [] => bail!("{title} has no version {prefix}"),
        _ => bail!("{prefix} names several versions of {title}: give more digits"),
    }
}

fn who(wiki: &Wiki, author: Option<PublicKey>) -> Result<String> {
    Ok(match author {
        None => "(unsigned)".to_owned(),
        Some(k) => {
            let short = k.to_hex()[..8].to_owned();
            match wiki.name_of(&k)? {
                Some(n) => format!("{n} ({short})"),
                None => short,
            }
        }
    })
}

/// A title as a file name: `%`, path and reserved characters as `%XX`.
fn file_name(t: &Title) -> String {
    let mut out = String::new();
    for c in t.as_str().chars() {
        if matches!(
            c,
            '%' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '/' | '\\'
        ) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push_str(".md");
    out
}

/// The title of a `<name>.md` file (`%XX` decoded), if it is one.
fn title_of_file(name: &str) -> Option<Title> {
    let stem = name.strip_suffix(".md")?;
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = stem.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Title::new(&String::from_utf8(out).ok()?).ok()
}

fn show(page: &Page, wiki: &Wiki, json: bool, out: &mut impl Write) -> Result<()> {
    if json {
        let o = serde_json::json!({
            "title": page.title.as_str(),
            "exists": page.exists(),
            "forked": page.is_forked(),
            "deleted": page.is_deleted(),
            "hidden": page.hidden,
            "versions": page.versions.iter().map(Version::to_json).collect::<Vec<_>>(),
        });
        writeln!(out, "{o}")?;
        return Ok(());
    }
    if !page.exists() {
        bail!("no page {} (create it with `cairn wiki edit`)", page.title);
    }
    if page.versions.is_empty() {
        bail!(
            "every current version of {} is by a blocked author ({} hidden)",
            page.title,
            page.hidden
        );
    }
    if let [v] = page.versions.as_slice()
        && page.hidden == 0
    {
        match &v.body {
            Body::Text(t) => write!(out, "{t}")?,
            Body::Redirect(to) => writeln!(out, "#REDIRECT [[{to}]]")?,
            Body::Deleted => bail!(
                "{} was deleted (version {}); `cairn wiki undelete` brings it back",
                page.title,
                v.hash
            ),
            Body::Broken(why) => bail!("{} holds a broken value: {why}", page.title),
        }
        return Ok(());
    }
    writeln!(
        out,
        "{} is forked: {} current versions{} (`cairn wiki merge` joins them)",
        page.title,
        page.versions.len(),
        if page.hidden > 0 {
            format!(", and {} by blocked authors", page.hidden)
        } else {
            String::new()
        }
    )?;
    for v in &page.versions {
        writeln!(
            out,
            "\n=== version {} by {}{}: {} ===",
            v.hash,
            who(wiki, v.author)?,
            v.time
                .map(|t| format!(" at {} UTC", utc(t)))
                .unwrap_or_default(),
            if v.summary.is_empty() {
                "-"
            } else {
                &v.summary
            }
        )?;
        match &v.body {
            Body::Text(t) => {
                write!(out, "{t}")?;
                if !t.ends_with('\n') {
                    writeln!(out)?;
                }
            }
            Body::Redirect(to) => writeln!(out, "#REDIRECT [[{to}]]")?,
            Body::Deleted => writeln!(out, "(deleted)")?,
            Body::Broken(why) => writeln!(out, "(broken value: {why})")?,
        }
    }
    Ok(())
}

pub(crate) fn run(ctx: &mut Ctx<'_>, args: WikiArgs) -> Result<()> {
    let json = args.json;
    let Ctx {
        store,
        files,
        out,
        err,
    } = ctx;
    let reader = || store.wiki(false);
    let writer = || store.wiki(true);
    match args.cmd {
        WikiCommand::List => {
            let wiki = reader()?;
            for p in wiki.list()? {
                if json {
                    let mut o = serde_json::to_value(&p)?;
                    o["state"] = p.state().into();
                    writeln!(out, "{o}")?;
                } else {
                    writeln!(out, "{}\t{}\t{}", p.title, p.state(), p.heads)?;
                }
            }
        }
        WikiCommand::Show { title: t } => {
            let wiki = reader()?;
            let page = wiki.page(&title(&t)?)?;
            show(&page, &wiki, json, out)?;
        }
        WikiCommand::Edit {
            title: t,
            file,
            summary,
        } => {
            let t = title(&t)?;
            let text = files.read_text(&file)?;
            let wiki = writer()?;
            let h = wiki.save(&t, &text, &save_opts(&summary))?;
            writeln!(out, "{h}")?;
        }
        WikiCommand::History { title: t } => {
            let wiki = reader()?;
            let t = title(&t)?;
            for v in wiki.history(&t)? {
                if json {
                    let mut o = v.to_json();
                    if let Some(m) = o.as_object_mut() {
                        m.remove("text");
                    }
                    writeln!(out, "{o}")?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}",
                        v.hash,
                        v.time.map(utc).unwrap_or_else(|| "-".into()),
                        who(&wiki, v.author)?,
                        if v.title == t {
                            v.body.kind().to_owned()
                        } else {
                            format!("{} (as {})", v.body.kind(), v.title)
                        },
                        v.summary
                    )?;
                }
            }
        }
        WikiCommand::Diff { title: t, a, b } => {
            let wiki = reader()?;
            let t = title(&t)?;
            let history = wiki.history(&t)?;
            let heads = wiki.heads(&t)?;
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) => (pick(&history, &t, &a)?.hash, pick(&history, &t, &b)?.hash),
                (Some(a), None) => match heads.as_slice() {
                    [h] => (pick(&history, &t, &a)?.hash, *h),
                    [] => bail!("no page {t}"),
                    _ => bail!("{t} is forked: name both versions"),
                },
                (None, Some(_)) => bail!("give A before B"),
                (None, None) => match heads.as_slice() {
                    [] => bail!("no page {t}"),
                    [h] => {
                        let v = pick(&history, &t, &h.to_hex())?;
                        let parent = v
                            .parents
                            .iter()
                            .find(|p| history.iter().any(|x| x.hash == **p));
                        match parent {
                            Some(p) => (*p, *h),
                            None => bail!("{t} has a single version: nothing to compare"),
                        }
                    }
                    [x, y, ..] => (*x, *y),
                },
            };
            let d = wiki.diff(&t, &a, &b)?;
            if json {
                let o = serde_json::json!({"a": a.to_hex(), "b": b.to_hex(), "diff": d});
                writeln!(out, "{o}")?;
            } else {
                write!(out, "{d}")?;
            }
        }
        WikiCommand::Merge {
            title: t,
            save,
            force,
            summary,
        } => {
            let t = title(&t)?;
            let wiki = if save { writer()? } else { reader()? };
            let m = wiki.merge(&t)?;
            if m.heads.is_empty() {
                bail!("no page {t}");
            }
            let saved = if save {
                if m.conflicts > 0 && !force {
                    bail!(
                        "the merge of {t} has {} conflicts: resolve them and `cairn wiki edit`, or --force",
                        m.conflicts
                    );
                }
                let opts = SaveOptions {
                    links: Some(m.heads.clone()),
                    ..save_opts(&summary)
                };
                Some(wiki.save(&t, &m.text, &opts)?)
            } else {
                None
            };
            if json {
                let o = serde_json::json!({
                    "text": m.text,
                    "conflicts": m.conflicts,
                    "heads": m.heads.iter().map(Hash::to_hex).collect::<Vec<_>>(),
                    "bases": m.bases.iter().map(|b| b.map(|b| b.to_hex())).collect::<Vec<_>>(),
                    "saved": saved.map(|h| h.to_hex()),
                });
                writeln!(out, "{o}")?;
            } else if let Some(h) = saved {
                writeln!(out, "{h}")?;
            } else {
                write!(out, "{}", m.text)?;
                writeln!(
                    err,
                    "cairn: {} versions merged, {} conflicts marked",
                    m.heads.len(),
                    m.conflicts
                )?;
            }
        }
        WikiCommand::Revert {
            title: t,
            version,
            summary,
        } => {
            let t = title(&t)?;
            let wiki = writer()?;
            let history = wiki.history(&t)?;
            let v = pick(&history, &t, &version)?.hash;
            let summary = summary.unwrap_or_else(|| format!("revert to {}", &v.to_hex()[..12]));
            writeln!(out, "{}", wiki.revert(&t, &v, &save_opts(&summary))?)?;
        }
        WikiCommand::Delete { title: t, summary } => {
            let t = title(&t)?;
            let wiki = writer()?;
            if !wiki.page(&t)?.exists() {
                bail!("no page {t}");
            }
            writeln!(out, "{}", wiki.delete(&t, &save_opts(&summary))?)?;
        }
        WikiCommand::Undelete { title: t } => {
            let t = title(&t)?;
            let wiki = writer()?;
            writeln!(out, "{}", wiki.undelete(&t, &save_opts("undelete"))?)?;
        }
        WikiCommand::Rename { from, to } => {
            let (from, to) = (title(&from)?, title(&to)?);
            let wiki = writer()?;
            let (moved, redirect) =
                wiki.rename(&from, &to, &save_opts(&format!("rename from {from}")))?;
            writeln!(out, "{moved}\n{redirect}")?;
        }
        WikiCommand::Search { query, limit } => {
            let wiki = reader()?;
            for h in wiki.search(&query, limit.unwrap_or(DEFAULT_LIMIT))? {
                if json {
                    writeln!(out, "{}", serde_json::to_value(&h)?)?;
                } else {
                    writeln!(out, "{}\t{:.3}", h.title, h.score)?;
                }
            }
        }
        WikiCommand::Backlinks { title: t } => {
            let wiki = reader()?;
            let links = wiki.backlinks(&title(&t)?)?;
            if json {
                writeln!(out, "{}", serde_json::to_value(&links)?)?;
            } else {
                for l in links {
                    writeln!(out, "{l}")?;
                }
            }
        }
        WikiCommand::Changes { limit, author } => {
            let wiki = reader()?;
            let limit = limit.unwrap_or(DEFAULT_LIMIT);
            let changes = match author {
                Some(a) => wiki.edits_by(&a, limit)?,
                None => wiki.changes(limit)?,
            };
            for c in changes {
                if json {
                    writeln!(out, "{}", c.to_json())?;
                } else {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        if c.time == 0 { "-".into() } else { utc(c.time) },
                        c.hash,
                        c.title,
                        c.kind,
                        who(&wiki, c.author)?,
                        c.summary
                    )?;
                }
            }
        }
        WikiCommand::Name { name } => {
            let wiki = writer()?;
            writeln!(out, "{}", wiki.set_name(&name, now_ms())?)?;
        }
        WikiCommand::Block { author } => reader()?.block(&author)?,
        WikiCommand::Unblock { author } => reader()?.unblock(&author)?,
        WikiCommand::Import { dir } => {
            let wiki = writer()?;
            let (mut saved, mut same) = (0u64, 0u64);
            // Opened at the first image; the directory's real path, to keep images inside.
            let mut blobs: Option<BlobStore> = None;
            let mut root: Option<std::path::PathBuf> = None;
            for name in files.list_dir(&dir)? {
                let Some(t) = title_of_file(&name) else {
                    if name.ends_with(".md") {
                        writeln!(err, "cairn: skipping {name}: not a page title")?;
                    }
                    continue;
                };
                let text = files.read_text(&dir.join(&name).to_string_lossy())?;
                // Images in the directory become blobs, named `blob:<hex>` in the page.
                let text = rewrite_images(&text, |target| {
                    let Some(rel) = relative_file(target) else {
                        return Ok(None);
                    };
                    let root = match &root {
                        Some(r) => r,
                        None => {
                            let own = files.own_path(&dir)?;
                            root.insert(
                                own.canonicalize()
                                    .with_context(|| format!("reading {}", own.display()))?,
                            )
                        }
                    };
                    let file = match root.join(rel).canonicalize() {
                        Ok(f) if f.starts_with(root.as_path()) && f.is_file() => f,
                        _ => {
                            writeln!(
                                err,
                                "cairn: {name}: image {target} is not a file in {}: left as is",
                                dir.display()
                            )?;
                            return Ok(None);
                        }
                    };
                    let blobs = match &blobs {
                        Some(b) => b,
                        None => blobs.insert(store.blobs(wiki.log())?),
                    };
                    let h = cairn_cli::blob::add_file(blobs, &file)
                        .with_context(|| format!("{name}: adding image {target}"))?;
                    Ok(Some(format!("blob:{}", h.to_hex())))
                })?;
                if wiki.page(&t)?.text() == Some(text.as_str()) {
                    same += 1;
                    continue;
                }
                wiki.save(&t, &text, &save_opts(&format!("import {name}")))?;
                saved += 1;
            }
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"saved": saved, "unchanged": same})
                )?;
            } else {
                writeln!(out, "{saved} pages saved, {same} unchanged")?;
            }
        }
        WikiCommand::Export { dir } => {
            let wiki = reader()?;
            files.create_dir_all(&dir)?;
            let mut written = 0u64;
            let mut blobs: Option<BlobStore> = None;
            // Each blob written once: its path relative to DIR.
            let mut images: BTreeMap<BlobHash, String> = BTreeMap::new();
            for p in wiki.list()? {
                let page = wiki.page(&p.title)?;
                let text = match page.text() {
                    Some(t) => t.to_owned(),
                    None if page.is_forked() => {
                        let m = wiki.merge(&p.title)?;
                        if m.heads.is_empty() || m.text.is_empty() {
                            continue;
                        }
                        writeln!(
                            err,
                            "cairn: {} is forked: exported its merge ({} conflicts marked)",
                            p.title, m.conflicts
                        )?;
                        m.text
                    }
                    None => continue,
                };
                // Images named `blob:<hex>` are written to DIR/images/<hex>.<ext> and the
                // page names them by that relative path.
                let text = rewrite_images(&text, |target| {
                    let Some(hex) = target.strip_prefix("blob:") else {
                        return Ok(None);
                    };
                    let Ok(h) = hex.parse::<BlobHash>() else {
                        return Ok(None);
                    };
                    if let Some(rel) = images.get(&h) {
                        return Ok(Some(rel.clone()));
                    }
                    let blobs = match &blobs {
                        Some(b) => b,
                        None => blobs.insert(store.blobs(wiki.log())?),
                    };
                    let Some(r) = blobs.reader(&h)? else {
                        writeln!(
                            err,
                            "cairn: {}: blob {hex} is not here: left as blob:",
                            p.title
                        )?;
                        return Ok(None);
                    };
                    let mut head = Vec::new();
                    r.take(512).read_to_end(&mut head)?;
                    let rel = format!("images/{}.{}", h.to_hex(), sniff(&head));
                    let own = files.own_path(&dir)?;
                    std::fs::create_dir_all(own.join("images"))
                        .with_context(|| format!("creating {}", own.join("images").display()))?;
                    cairn_cli::blob::write_file(blobs, &h, &own.join(&rel))?;
                    images.insert(h, rel.clone());
                    Ok(Some(rel))
                })?;
                let path = dir.join(file_name(&p.title));
                files.write(&path, text)?;
                written += 1;
            }
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"written": written, "images": images.len()})
                )?;
            } else if images.is_empty() {
                writeln!(out, "{written} pages written")?;
            } else {
                writeln!(out, "{written} pages written, {} images", images.len())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_minute() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_796_188_800_000 + 59_999), "2026-12-02 05:20");
        assert_eq!(utc(951_868_740_000), "2000-02-29 23:59");
        assert_eq!(utc(4_107_585_600_000), "2100-03-01 12:00");
    }

    #[test]
    fn file_names_round_trip() {
        for s in ["Cairn", "Q: why? 50% \"odd\" *", "Inukshuk"] {
            let t = Title::new(s).unwrap();
            let f = file_name(&t);
            assert!(!f.contains(':') && !f.contains('?') && !f.contains('*'));
            assert_eq!(title_of_file(&f), Some(t));
        }
        assert_eq!(title_of_file("..%2F..%2Fetc.md"), None);
        assert_eq!(title_of_file("notes.txt"), None);
    }

    #[test]
    fn image_targets_outside_code() {
        let text = "A ![x](images/a.png \"t\") and ![y]( b.svg ) [not](c.png)\n\
                    `![code](d.png)` ``![more `code`](e.png)`` ![](f.gif)\n\
                    ```\n![fenced](g.png)\n```\n![alt [nested]](h.png) ![z](i.png\n";
        let found: Vec<&str> = image_targets(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(found, ["images/a.png", "b.svg", "f.gif"]);
        let out = rewrite_images(text, |t| Ok((t == "b.svg").then(|| "blob:00".to_owned())));
        assert!(out.unwrap().contains("![y]( blob:00 )"));
        let text = "é![ü](ß.png)€ ![\u{1F5FF}](a.png) ![x](";
        let found: Vec<&str> = image_targets(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(found, ["ß.png", "a.png"]);
    }

    #[test]
    fn only_plain_relative_paths_are_files() {
        // (Whether one is inside the directory is checked on its real path.)
        for ok in ["images/a.png", "./a.png", "a b.png", "../a.png"] {
            assert!(relative_file(ok).is_some(), "{ok}");
        }
        for no in [
            "/etc/passwd",
            "blob:00",
            "https://x/a.png",
            "data:image/png;base64,AA",
            "#top",
        ] {
            assert!(relative_file(no).is_none(), "{no}");
        }
    }

    #[test]
    fn sniffed_extensions() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), "png");
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), "jpg");
        assert_eq!(sniff(b"GIF89a.."), "gif");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), "webp");
        assert_eq!(sniff(b"<?xml version=\"1.0\"?>\n<svg xmlns=..."), "svg");
        assert_eq!(sniff(b"  <svg viewBox"), "svg");
        assert_eq!(sniff(b"<html>"), "bin");
        assert_eq!(sniff(b""), "bin");
    }
}
