//! redb's [`StorageBackend`] over the Origin Private File System: one OPFS file opened with
//! a `FileSystemSyncAccessHandle` (synchronous reads and writes at an offset, size, truncate,
//! flush), which browsers give only to dedicated workers. The handle is exclusive: while one
//! worker holds it, another `createSyncAccessHandle` on the same file fails.

use std::fmt;
use std::io;

use cairn_log::StorageBackend;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetFileOptions,
    FileSystemReadWriteOptions, FileSystemSyncAccessHandle, WorkerGlobalScope,
};

// What makes `WorkerOnly` sound is that this build has no threads. With the `atomics` target
// feature (wasm threads over SharedArrayBuffer) it would not be: refuse to build then.
#[cfg(target_feature = "atomics")]
compile_error!("cairn-web's OPFS backend assumes wasm32 without threads (no `atomics` feature)");

/// A JS value used only on the thread that made it.
///
/// redb requires `StorageBackend: Send + Sync`; a JS handle is neither, because JS objects
/// live in one JS realm (here, one dedicated worker) and may not be touched from another
/// thread. This wrapper claims both, and that is sound *because* this crate is built for
/// `wasm32-unknown-unknown` without the `atomics` feature (checked above): such a module has
/// exactly one thread, the worker's, so no value can ever be sent to or shared with another
/// thread. The claim is made for this wrapper only, which is private to this module, and the
/// module is compiled only for wasm32.
struct WorkerOnly<T>(T);

#[allow(unsafe_code)]
// SAFETY: see `WorkerOnly`: a wasm32 build without `atomics` has a single thread.
unsafe impl<T> Send for WorkerOnly<T> {}
#[allow(unsafe_code)]
// SAFETY: see `WorkerOnly`: a wasm32 build without `atomics` has a single thread.
unsafe impl<T> Sync for WorkerOnly<T> {}

/// An OPFS file as redb's storage backend.
///
/// Writes at consecutive offsets are gathered (up to [`GATHER_BYTES`]) and given to the
/// handle as one: redb writes a commit's dirty pages one page at a time, in offset order, and
/// each `write` call into the browser costs far more than its bytes (a new browser indexing a
/// 100k-edit wiki spent half its time in them). What is gathered is written before any read
/// that overlaps it, and before `len`, `set_len`, `sync_data` and `close`: reads see every
/// write, and a sync makes every write durable, as redb requires.
pub struct OpfsBackend {
    name: String,
    handle: WorkerOnly<FileSystemSyncAccessHandle>,
    /// Gathered writes: the offset of the first byte, then the bytes.
    gathered: WorkerOnly<std::cell::RefCell<(u64, Vec<u8>)>>,
}

/// Most bytes of consecutive writes gathered before they are written.
const GATHER_BYTES: usize = 1 << 20;

impl fmt::Debug for OpfsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpfsBackend")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A JS exception as an I/O error (its message, or its string form).
pub(crate) fn js_io(e: JsValue) -> io::Error {
    io::Error::other(js_text(&e))
}

/// The readable text of a JS value (an Error's name and message, or its string form).
pub(crate) fn js_text(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return format!(
            "{}: {}",
            String::from(err.name()),
            String::from(err.message())
        );
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

fn at(offset: u64) -> FileSystemReadWriteOptions {
    let o = FileSystemReadWriteOptions::new();
    // Offsets of a redb file stay far below 2^53, where an f64 is exact.
    o.set_at(offset as f64);
    o
}

impl OpfsBackend {
    /// Opens (creating it if needed) the OPFS file `name` in the origin's root directory and
    /// takes its synchronous access handle. Fails if another worker holds the handle.
    pub async fn open(name: &str) -> Result<OpfsBackend, JsValue> {
        let global: WorkerGlobalScope = js_sys::global().dyn_into()?;
        let dir: FileSystemDirectoryHandle =
            JsFuture::from(global.navigator().storage().get_directory())
                .await?
                .dyn_into()?;
        let opts = FileSystemGetFileOptions::new();
        opts.set_create(true);
        let file: FileSystemFileHandle =
            JsFuture::from(dir.get_file_handle_with_options(name, &opts))
                .await?
                .dyn_into()?;
        let handle: FileSystemSyncAccessHandle = JsFuture::from(file.create_sync_access_handle())
            .await?
            .dyn_into()?;
        Ok(OpfsBackend {
            name: name.to_owned(),
            handle: WorkerOnly(handle),
            gathered: WorkerOnly(std::cell::RefCell::new((0, Vec::new()))),
        })
    }

    fn h(&self) -> &FileSystemSyncAccessHandle {
        &self.handle.0
    }

    /// Writes `data` at `offset` with the handle.
    fn write_now(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            let n = self
                .h()
                .write_with_u8_array_and_options(&data[done..], &at(offset + done as u64))
                .map_err(js_io)? as usize;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("write at {} wrote nothing", offset + done as u64),
                ));
            }
            done += n;
        }
        Ok(())
    }

    /// Writes the gathered writes.
    fn write_gathered(&self) -> io::Result<()> {
        let mut g = self.gathered.0.borrow_mut();
        if g.1.is_empty() {
            return Ok(());
        }
        let r = self.write_now(g.0, &g.1);
        g.1.clear();
        r
    }
}

impl Drop for OpfsBackend {
    fn drop(&mut self) {
        // redb closes the backend first; this only covers a backend dropped without it.
        let _ = self.write_gathered();
    }
}

impl StorageBackend for OpfsBackend {
    fn len(&self) -> io::Result<u64> {
        self.write_gathered()?;
        Ok(self.h().get_size().map_err(js_io)? as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let overlaps = {
            let g = self.gathered.0.borrow();
            !g.1.is_empty() && offset < g.0 + g.1.len() as u64 && g.0 < offset + out.len() as u64
        };
        if overlaps {
            self.write_gathered()?;
        }
        let mut done = 0;
        while done < out.len() {
            let n = self
                .h()
                .read_with_u8_array_and_options(&mut out[done..], &at(offset + done as u64))
                .map_err(js_io)? as usize;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read of {} bytes at {offset} past the end", out.len()),
                ));
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.write_gathered()?;
        // OPFS pads a file that grows with zero bytes, as redb requires.
        self.h().truncate_with_f64(len as f64).map_err(js_io)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.write_gathered()?;
        self.h().flush().map_err(js_io)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        {
            let mut g = self.gathered.0.borrow_mut();
            let end = g.0 + g.1.len() as u64;
            if !g.1.is_empty() && offset == end && g.1.len() + data.len() <= GATHER_BYTES {
                g.1.extend_from_slice(data);
                return Ok(());
            }
        }
        self.write_gathered()?;
        if data.len() >= GATHER_BYTES {
            return self.write_now(offset, data);
        }
        let mut g = self.gathered.0.borrow_mut();
        g.0 = offset;
        g.1.extend_from_slice(data);
        Ok(())
    }

    fn close(&self) -> io::Result<()> {
        self.write_gathered()?;
        // Flush, then give the handle back so another worker (or a reopen) can take it.
        self.h().flush().map_err(js_io)?;
        self.h().close();
        Ok(())
    }
}
