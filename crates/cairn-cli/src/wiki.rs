//! `cairn wiki …`: the peer-to-peer wiki (crate cairn-wiki) on the store's log.
//!
//! A command opens the store itself, or, while `cairn serve` holds it, runs in the server
//! (through `DATA/cairn.sock`, `crate::exec`): the same code either way, on a [`Ctx`].

use std::io::Write;

use anyhow::{Context, Result, bail};
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
    /// Load Markdown files (`<Title>.md`) from DIR as pages; unchanged pages are skipped.
    Import {
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// Write every page with text to DIR as `<Title>.md` (a forked page: its merge).
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
            dirs: vec![(dir.to_string_lossy().into_owned(), |n| {
                title_of_file(n).is_some()
            })],
            ..Inputs::default()
        },
        _ => Inputs::default(),
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
            for name in files.list_dir(&dir)? {
                let Some(t) = title_of_file(&name) else {
                    if name.ends_with(".md") {
                        writeln!(err, "cairn: skipping {name}: not a page title")?;
                    }
                    continue;
                };
                let text = files.read_text(&dir.join(&name).to_string_lossy())?;
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
                let path = dir.join(file_name(&p.title));
                files.write(&path, text)?;
                written += 1;
            }
            if json {
                writeln!(out, "{}", serde_json::json!({"written": written}))?;
            } else {
                writeln!(out, "{written} pages written")?;
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
}
