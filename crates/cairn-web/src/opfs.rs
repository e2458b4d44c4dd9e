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
pub struct OpfsBackend {
    name: String,
    handle: WorkerOnly<FileSystemSyncAccessHandle>,
}

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
        })
    }

    fn h(&self) -> &FileSystemSyncAccessHandle {
        &self.handle.0
    }
}

impl StorageBackend for OpfsBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.h().get_size().map_err(js_io)? as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
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
        // OPFS pads a file that grows with zero bytes, as redb requires.
        self.h().truncate_with_f64(len as f64).map_err(js_io)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.h().flush().map_err(js_io)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
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

    fn close(&self) -> io::Result<()> {
        // Flush, then give the handle back so another worker (or a reopen) can take it.
        self.h().flush().map_err(js_io)?;
        self.h().close();
        Ok(())
    }
}
