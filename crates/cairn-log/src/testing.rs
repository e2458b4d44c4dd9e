//! Fault injection for tests: a storage backend that can "crash".
//!
//! [`CrashBackend`] keeps the bytes a process has *written* apart from the bytes that are
//! *durable* (covered by a `sync_data`). [`CrashHandle::crash`] simulates power loss: it
//! returns the durable image with a chosen subset of the unsynced writes applied, in order —
//! from none of them to all, as a disk may have flushed any of them. A countdown can also make
//! every I/O call fail after N calls, as if the process died in the middle of a commit.
//!
//! The log's crash tests open a [`Log`](crate::Log) on it, write until the fault, crash,
//! reopen the image and check that every acknowledged write is there.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use redb::StorageBackend;

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Default)]
struct State {
    /// What a reader of the file sees now.
    current: Vec<u8>,
    /// What survives a crash for sure.
    durable: Vec<u8>,
    /// Operations since the last sync, in order.
    unsynced: Vec<Op>,
    /// Calls left before every call fails.
    countdown: Option<u64>,
}

impl State {
    fn tick(&mut self) -> io::Result<()> {
        match &mut self.countdown {
            Some(0) => Err(io::Error::other("injected fault: the process has crashed")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn apply(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(off, data) => {
            let end = *off as usize + data.len();
            if buf.len() < end {
                buf.resize(end, 0);
            }
            buf[*off as usize..end].copy_from_slice(data);
        }
        Op::SetLen(len) => buf.resize(*len as usize, 0),
    }
}

/// A redb storage backend in memory that separates written from synced bytes.
#[derive(Clone)]
pub struct CrashBackend {
    state: Arc<Mutex<State>>,
}

/// Controls a [`CrashBackend`] after it has been handed to the store.
#[derive(Clone)]
pub struct CrashHandle {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for CrashBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrashBackend")
    }
}
impl fmt::Debug for CrashHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrashHandle")
    }
}

impl CrashBackend {
    /// An empty backend and its handle.
    pub fn new() -> (CrashBackend, CrashHandle) {
        Self::from_image(Vec::new())
    }

    /// A backend whose durable and current content is `image` (a crashed store reopened).
    pub fn from_image(image: Vec<u8>) -> (CrashBackend, CrashHandle) {
        let state = Arc::new(Mutex::new(State {
            current: image.clone(),
            durable: image,
            ..State::default()
        }));
        (
            CrashBackend {
                state: state.clone(),
            },
            CrashHandle { state },
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.tick()?;
        f(&mut s)
    }
}

impl CrashHandle {
    /// After `calls` more I/O calls, every call fails.
    pub fn fail_after(&self, calls: u64) {
        self.lock().countdown = Some(calls);
    }

    /// How many writes are not yet synced.
    pub fn unsynced_ops(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// The image after power loss: the durable bytes plus the unsynced operations for which
    /// `keep(index)` returns true, applied in their original order.
    pub fn crash(&self, mut keep: impl FnMut(usize) -> bool) -> Vec<u8> {
        let s = self.lock();
        let mut image = s.durable.clone();
        for (i, op) in s.unsynced.iter().enumerate() {
            if keep(i) {
                apply(&mut image, op);
            }
        }
        image
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StorageBackend for CrashBackend {
    fn len(&self) -> io::Result<u64> {
        self.with(|s| Ok(s.current.len() as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.with(|s| {
            let start = offset as usize;
            let src = s
                .current
                .get(start..start + out.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
            out.copy_from_slice(src);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|s| {
            let op = Op::SetLen(len);
            apply(&mut s.current, &op);
            s.unsynced.push(op);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|s| {
            s.durable = s.current.clone();
            s.unsynced.clear();
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with(|s| {
            let op = Op::Write(offset, data.to_vec());
            apply(&mut s.current, &op);
            s.unsynced.push(op);
            Ok(())
        })
    }
}
