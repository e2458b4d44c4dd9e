//! The progress line of a long `cairn sync` on a terminal: drawn on stderr (stdout may be
//! the transport), redrawn at most ten times a second, cleared before the JSON summary so
//! that the summary stays the last line. Nothing at all when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use cairn_sync::{Session, SyncStore};

/// A sync shorter than this shows no progress at all.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// At most one redraw per this interval.
const REDRAW: Duration = Duration::from_millis(100);
/// Width of the bar itself, between the brackets.
const BAR: usize = 8;

/// What the progress line shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Nodes received so far.
    pub nodes_received: u64,
    /// Nodes sent so far.
    pub nodes_sent: u64,
    /// Bytes read from the peer.
    pub bytes_received: u64,
    /// Bytes written to the peer.
    pub bytes_sent: u64,
    /// Nodes expected in all, when known (a clone into an empty store: the peer's count).
    pub total: Option<u64>,
    /// Time since the sync started.
    pub elapsed: Duration,
}

/// A count in at most five characters: `999`, `9,999`, `12.3k`, `123k`, `1.23M`.
fn count(n: u64) -> String {
    match n {
        0..10_000 => {
            if n >= 1000 {
                format!("{},{:03}", n / 1000, n % 1000)
            } else {
                n.to_string()
            }
        }
        10_000..100_000 => format!("{:.1}k", n as f64 / 1e3),
        100_000..1_000_000 => format!("{}k", n / 1000),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

/// Bytes with a binary unit: `512 B`, `1.5 KiB`, `12.0 MiB`, `1.20 GiB`.
fn bytes(n: f64) -> String {
    const K: f64 = 1024.0;
    if n < K {
        format!("{n:.0} B")
    } else if n < K * K {
        format!("{:.1} KiB", n / K)
    } else if n < K * K * K {
        format!("{:.1} MiB", n / (K * K))
    } else {
        format!("{:.2} GiB", n / (K * K * K))
    }
}

/// The progress line for `s`, cut to `width` characters (it must never wrap, or redraws
/// would leave lines behind):
///
/// `[###.....] 45% ↓ 45.1k/100k nodes 4.4 MiB  ↑ 12 nodes 1.2 KiB  9,811/s  4.6s`
///
/// (the bar and the total only when the total is known; the rate is nodes per second, both
/// ways together).
pub fn line(s: &Snapshot, width: usize) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-3);
    let mut out = String::new();
    if let Some(total) = s.total.filter(|t| *t > 0) {
        let frac = (s.nodes_received as f64 / total as f64).clamp(0.0, 1.0);
        let filled = ((frac * BAR as f64) as usize).min(BAR);
        out.push('[');
        out.extend(std::iter::repeat_n('#', filled));
        out.extend(std::iter::repeat_n('.', BAR - filled));
        out.push_str(&format!("] {}% ", (frac * 100.0) as u32));
        out.push_str(&format!(
            "↓ {}/{} nodes",
            count(s.nodes_received),
            count(total)
        ));
    } else {
        out.push_str(&format!("↓ {} nodes", count(s.nodes_received)));
    }
    out.push_str(&format!(" {}", bytes(s.bytes_received as f64)));
    out.push_str(&format!(
        "  ↑ {} nodes {}",
        count(s.nodes_sent),
        bytes(s.bytes_sent as f64)
    ));
    let rate = (s.nodes_received + s.nodes_sent) as f64 / secs;
    out.push_str(&format!("  {}/s", count(rate as u64)));
    let t = s.elapsed.as_secs();
    if t < 60 {
        out.push_str(&format!("  {:.1}s", s.elapsed.as_secs_f64()));
    } else {
        out.push_str(&format!("  {}m{:02}s", t / 60, t % 60));
    }
    if out.chars().count() > width {
        out = out.chars().take(width).collect();
    }
    out
}

/// The terminal's width if the shell exports it, else 80; one column is kept free.
fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c >= 20)
        .unwrap_or(80)
        - 1
}

/// The progress display of one sync. Feed it the session from the driver's progress hook;
/// [`Bar::clear`] (or dropping it) erases the line.
#[derive(Debug)]
pub struct Bar {
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
    drawn: bool,
    store_was_empty: bool,
}

impl Bar {
    /// A display on stderr if it is a terminal (else it does nothing); `store_len` is the
    /// local log's length before the sync (a clone into an empty store shows a bar).
    pub fn stderr(store_len: u64) -> Self {
        Bar::new(std::io::stderr().is_terminal(), store_len)
    }

    /// A display that draws only when `enabled`.
    pub fn new(enabled: bool, store_len: u64) -> Self {
        Bar {
            enabled,
            started: Instant::now(),
            last: None,
            drawn: false,
            store_was_empty: store_len == 0,
        }
    }

    /// Redraws the line from the session's counters if it is due (the sync has run for a
    /// second, and the last redraw is a tenth of a second old).
    pub fn update<S: SyncStore>(&mut self, session: &Session<S>) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now - self.started;
        if elapsed < SHOW_AFTER || self.last.is_some_and(|l| now - l < REDRAW) {
            return;
        }
        self.last = Some(now);
        let st = session.stats();
        let receiving = session.options().mode.receives();
        let snap = Snapshot {
            nodes_received: st.nodes_received,
            nodes_sent: st.nodes_sent,
            bytes_received: st.bytes_received,
            bytes_sent: st.bytes_sent,
            total: session
                .peer_count()
                .filter(|_| self.store_was_empty && receiving),
            elapsed,
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{}\x1b[K", line(&snap, width()));
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erases the line, if one was drawn.
    pub fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_bytes_stay_short() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(9_999), "9,999");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(123_456), "123k");
        assert_eq!(count(1_234_567), "1.23M");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(12.0 * 1024.0 * 1024.0), "12.0 MiB");
        assert_eq!(bytes(1.2 * 1024.0 * 1024.0 * 1024.0), "1.20 GiB");
    }

    #[test]
    fn line_with_and_without_a_total() {
        let mut s = Snapshot {
            nodes_received: 45_123,
            nodes_sent: 12,
            bytes_received: 4_600_000,
            bytes_sent: 1_229,
            total: Some(100_000),
            elapsed: Duration::from_millis(4_600),
        };
        assert_eq!(
            line(&s, 200),
            "[###.....] 45% ↓ 45.1k/100k nodes 4.4 MiB  ↑ 12 nodes 1.2 KiB  9,811/s  4.6s"
        );
        s.total = None;
        s.elapsed = Duration::from_secs(125);
        assert_eq!(
            line(&s, 200),
            "↓ 45.1k nodes 4.4 MiB  ↑ 12 nodes 1.2 KiB  361/s  2m05s"
        );
        // Fits 80 columns in a clone of a million nodes.
        let big = Snapshot {
            nodes_received: 654_321,
            nodes_sent: 0,
            bytes_received: 66_000_000,
            bytes_sent: 12_000,
            total: Some(1_000_000),
            elapsed: Duration::from_secs(42),
        };
        assert!(line(&big, 200).chars().count() < 80, "{}", line(&big, 200));
        // Never wider than the terminal (counted in characters, not bytes).
        let cut = line(&s, 10);
        assert_eq!(cut.chars().count(), 10);
        assert_eq!(cut, "↓ 45.1k no");
        // Done, and more than announced (the peer wrote meanwhile): a full bar, 100 %.
        s.total = Some(10);
        s.nodes_received = 11;
        assert!(line(&s, 200).starts_with("[########] 100% ↓ 11/10 nodes"));
    }

    #[test]
    fn a_disabled_bar_draws_nothing() {
        let mut b = Bar::new(false, 0);
        let s = Session::new(cairn_sync::MemStore::new(), Default::default()).unwrap();
        b.started -= Duration::from_secs(5);
        b.update(&s);
        assert!(!b.drawn && b.last.is_none());
        let mut b = Bar::new(true, 0);
        // A short sync shows nothing either.
        b.update(&s);
        assert!(!b.drawn);
    }
}
