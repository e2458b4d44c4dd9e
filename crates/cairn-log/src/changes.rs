//! The changes feed: nodes in change-number order, by range, and live.
//!
//! Reads go page by page (each page a short read transaction), so a feed over a log of any
//! size holds one page in memory, and a slow reader never pins old pages of the store.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use event_listener::EventListener;
use redb::ReadableDatabase;

use crate::error::{ReadError, StorageError};
use crate::log::{Entry, Log, decode_stored_any};
use crate::tables::NODES;

/// Nodes read from the store per read transaction.
const PAGE: u64 = 512;
/// A page also ends once it holds this many bytes of nodes (at least one node): nodes may be
/// up to 16 MiB each, and a page of 512 such nodes would hold gigabytes.
const PAGE_BYTES: usize = 2 << 20;

/// Which part of the feed to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangesQuery {
    /// Only changes after this number (0: from the start).
    pub since: u64,
    /// Only changes up to and including this number.
    pub until: Option<u64>,
    /// At most this many nodes.
    pub limit: Option<u64>,
    /// After the stored nodes, wait for new ones (until `until` or `limit` is reached).
    pub live: bool,
}

impl ChangesQuery {
    /// The whole feed, not live.
    pub fn all() -> Self {
        Self::default()
    }
    /// Changes after `since`.
    pub fn since(mut self, since: u64) -> Self {
        self.since = since;
        self
    }
    /// Changes up to and including `until`.
    pub fn until(mut self, until: u64) -> Self {
        self.until = Some(until);
        self
    }
    /// At most `limit` nodes.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
    /// Keep waiting for new nodes.
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }
}

/// State shared by the blocking and the async reader.
#[derive(Debug)]
struct Cursor {
    log: Log,
    /// Next change number to read.
    next: u64,
    /// Last change number wanted.
    last: u64,
    live: bool,
    buf: VecDeque<Entry>,
}

impl Cursor {
    fn new(log: &Log, q: ChangesQuery) -> Cursor {
        let next = q.since.saturating_add(1);
        let mut last = q.until.unwrap_or(u64::MAX);
        if let Some(limit) = q.limit {
            last = last.min(q.since.saturating_add(limit));
        }
        Cursor {
            log: log.clone(),
            next,
            last,
            live: q.live,
            buf: VecDeque::new(),
        }
    }

    fn finished(&self) -> bool {
        self.buf.is_empty() && self.next > self.last
    }

    /// Whether nodes past `next` are committed.
    fn available(&self) -> bool {
        self.log.len() >= self.next
    }

    /// Reads the next page of committed nodes into `buf`.
    fn fill(&mut self) -> Result<(), ReadError> {
        let end = self.last.min(self.log.len()).min(self.next + PAGE - 1);
        if end < self.next {
            return Ok(());
        }
        let txn = self.log.inner.db.begin_read().map_err(StorageError::from)?;
        let nodes = txn.open_table(NODES).map_err(StorageError::from)?;
        let mut bytes = 0usize;
        let mut next = end + 1;
        for row in nodes.range(self.next..=end).map_err(StorageError::from)? {
            let (k, v) = row.map_err(StorageError::from)?;
            let change = k.value();
            let node = decode_stored_any(change, v.value())?;
            bytes += node.encoded_len();
            self.buf.push_back(Entry { change, node });
            if bytes >= PAGE_BYTES && change < end {
                next = change + 1;
                break;
            }
        }
        self.next = next;
        Ok(())
    }

    /// The next entry if one can be had without waiting; `Ok(None)` means wait (live) or end.
    fn step(&mut self) -> Option<Result<Entry, ReadError>> {
        if self.buf.is_empty()
            && self.available()
            && self.next <= self.last
            && let Err(e) = self.fill()
        {
            self.next = u64::MAX; // stop after reporting
            self.last = 0;
            return Some(Err(e));
        }
        self.buf.pop_front().map(Ok)
    }
}

/// The changes feed as a blocking iterator (see [`Log::changes`]). In live mode
/// [`Iterator::next`] blocks until a node arrives; use it from a thread, not an async task.
/// (In wasm32, where blocking would freeze the page, a live iterator ends at the end of the
/// log; [`ChangesStream`] waits there.)
#[derive(Debug)]
pub struct Changes {
    cursor: Cursor,
}

impl Iterator for Changes {
    type Item = Result<Entry, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.cursor.step() {
                return Some(item);
            }
            // In the browser nothing else can run while this blocks: a live iterator stops at
            // the end of the log there; use `ChangesStream` to wait.
            if self.cursor.finished() || !self.cursor.live || cfg!(target_family = "wasm") {
                return None;
            }
            #[cfg(not(target_family = "wasm"))]
            {
                use event_listener::Listener;
                // Register before checking, so a commit between the check and the wait is seen.
                let listener = self.cursor.log.inner.added.listen();
                if !self.cursor.available() {
                    listener.wait();
                }
            }
        }
    }
}

/// The changes feed as an async stream (see [`Log::changes_stream`]). Not tied to any async
/// runtime. Each page is read synchronously from the store (a few hundred microseconds).
#[derive(Debug)]
pub struct ChangesStream {
    cursor: Cursor,
    listener: Option<EventListener>,
}

impl futures_core::Stream for ChangesStream {
    type Item = Result<Entry, ReadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.cursor.step() {
                this.listener = None;
                return Poll::Ready(Some(item));
            }
            if this.cursor.finished() || !this.cursor.live {
                return Poll::Ready(None);
            }
            match &mut this.listener {
                None => {
                    this.listener = Some(this.cursor.log.inner.added.listen());
                    // Loop to re-check after registering.
                }
                Some(l) => {
                    if this.cursor.available() {
                        this.listener = None;
                        continue;
                    }
                    match Pin::new(l).poll(cx) {
                        Poll::Ready(()) => this.listener = None,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

impl Log {
    /// Reads the changes feed as a blocking iterator.
    pub fn changes(&self, q: ChangesQuery) -> Changes {
        Changes {
            cursor: Cursor::new(self, q),
        }
    }

    /// Reads the changes feed as an async stream.
    pub fn changes_stream(&self, q: ChangesQuery) -> ChangesStream {
        ChangesStream {
            cursor: Cursor::new(self, q),
            listener: None,
        }
    }

    /// Every node added from now on, as an async stream (a live feed from the current end).
    pub fn subscribe(&self) -> ChangesStream {
        self.changes_stream(ChangesQuery::all().since(self.len()).live())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogOptions;

    /// A page of the feed holds at most PAGE_BYTES of nodes (plus one), not 512 nodes of any
    /// size; every node is still read, in order.
    #[test]
    fn a_page_is_bounded_by_bytes() {
        let log = Log::memory(LogOptions::default()).unwrap();
        for i in 0..12u8 {
            log.append(vec![i; 1 << 20]).unwrap();
        }
        let mut c = Cursor::new(&log, ChangesQuery::all());
        c.fill().unwrap();
        let bytes: usize = c.buf.iter().map(|e| e.node.encoded_len()).sum();
        assert!(c.buf.len() < 12, "one page read {} nodes", c.buf.len());
        assert!(
            bytes <= PAGE_BYTES + (1 << 20) + 256,
            "one page of {bytes} bytes"
        );
        let changes: Vec<u64> = log
            .changes(ChangesQuery::all())
            .map(|e| e.unwrap().change)
            .collect();
        assert_eq!(changes, (1..=12).collect::<Vec<_>>());
    }
}
