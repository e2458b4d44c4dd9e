//! The HTTP front of `cairn serve --http ADDR`: one listener serving
//!
//! - `/sync`: the replication WebSocket, exactly what `--ws-listen` serves (the same Noise
//!   session code in [`crate::net`]); `cairn sync --connect ws://HOST:PORT/sync` and the
//!   browser peer both use it;
//! - `/hub`: the signalling hub ([`crate::hub`]);
//! - everything else: static files from `--web DIR` (without it, a short page saying how to
//!   build the app), with an unknown path without a file extension answered with
//!   `index.html`, so that the wiki app's path URLs work on reload.
//!
//! Plain `hyper` (HTTP/1.1 only) rather than axum: a static file handler, two upgrade paths and
//! a fallback need no router, and axum would add tower, its layers and its macros to the
//! command's build for nothing here. The upgraded WebSocket connections get their socket
//! back from hyper (`Upgraded::downcast`), so replication runs on exactly the stream type
//! `--ws-listen` gives it.
//!
//! Bounds: every connection takes a place under `cairn serve`'s caps (`--max-connections`,
//! `--max-per-ip`), held by the upgraded WebSocket after an upgrade; a request's head is at
//! most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers and must arrive within
//! [`HEAD_TIMEOUT`]; request bodies are never read (only GET and HEAD are served); a
//! connection serves requests for at most [`CONNECTION_LIFE`] (an upgraded one then lives by
//! its protocol's own timeouts).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::compress::{self, Coding, Compressed};
use crate::net::{Server, Slot};

/// Largest request head (request line and headers) hyper buffers (its minimum).
pub const MAX_HEAD: usize = 8192;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;
/// Time a client has to send a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an HTTP connection is served before it is closed (not counting the life of an
/// upgraded WebSocket).
pub const CONNECTION_LIFE: Duration = Duration::from_secs(120);

/// What `cairn serve --http` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The directory of static files (`--web`), if any.
    pub web: Option<PathBuf>,
    /// The signalling hub's caps.
    pub hub: crate::hub::Limits,
}

/// What every HTTP connection of one server shares.
#[derive(Debug)]
pub(crate) struct Http {
    /// The static files' directory, canonical (symbolic links resolved), so a path that
    /// resolves outside it is seen as such.
    web: Option<PathBuf>,
    /// The signalling hub at `/hub`.
    hub: Arc<crate::hub::Hub>,
    /// Compressed copies of the web directory's files.
    compressed: Option<Arc<Compressed>>,
}

impl Http {
    /// Checks the options (the web directory must exist) and starts the hub (on the current
    /// runtime).
    pub(crate) fn new(o: Options) -> Result<Http> {
        let web = match o.web {
            Some(dir) => Some(
                dir.canonicalize()
                    .with_context(|| format!("the web directory {}", dir.display()))?,
            ),
            None => None,
        };
        if let Some(dir) = &web
            && !dir.is_dir()
        {
            anyhow::bail!("--web {}: not a directory", dir.display());
        }
        Ok(Http {
            compressed: web.as_deref().map(Compressed::start),
            web,
            hub: crate::hub::Hub::new(o.hub),
        })
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A short text answer with `status`.
fn text(status: StatusCode, msg: &'static str) -> Response<Body> {
    let mut r = Response::new(full(msg));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves one accepted HTTP connection in a task of its own, holding `slot` (its place
/// under the caps) until it ends — or, after a WebSocket upgrade, until the WebSocket ends.
pub(crate) fn spawn_connection(server: &Arc<Server>, slot: Slot, tcp: TcpStream, from: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let server = server.clone();
    let slot = Arc::new(slot);
    let mut stopping = server.stopping.subscribe();
    tokio::spawn(async move {
        let service = {
            let server = server.clone();
            let slot = slot.clone();
            hyper::service::service_fn(move |req| {
                let server = server.clone();
                let slot = slot.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&server, slot, from, req).await) }
            })
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .max_buf_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        drop(slot);
        tokio::select! {
            r = tokio::time::timeout(CONNECTION_LIFE, conn) => match r {
                Ok(Ok(())) | Err(_) => {}
                // A malformed or oversize request, a client gone: anyone's, counted.
                Ok(Err(e)) => {
                    server.unfinished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!("{from}: http: {e}");
                }
            },
            _ = stopping.wait_for(|s| *s) => {}
        }
    });
}

/// Answers one request.
async fn handle(
    server: &Arc<Server>,
    slot: Arc<Slot>,
    from: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let get = req.method() == Method::GET;
    if !get && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/sync" => upgrade(server, slot, from, req, Endpoint::Sync),
        "/hub" => upgrade(server, slot, from, req, Endpoint::Hub),
        path if path.starts_with("/blob/") => {
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            blob(server, &path["/blob/".len()..], range, get).await
        }
        path => {
            let Some(http) = &server.http else {
                return text(StatusCode::NOT_FOUND, "not found\n");
            };
            let path = path.to_owned();
            let codings = req
                .headers()
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(compress::accepted)
                .unwrap_or_default();
            let web = http.web.as_deref().map(|w| (w, http.compressed.as_ref()));
            static_file(web, &path, get, &codings).await
        }
    }
}

/// The WebSocket endpoints.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    /// Replication (`/sync`).
    Sync,
    /// The signalling hub (`/hub`).
    Hub,
}

/// Whether `req` asks for a WebSocket (RFC 6455 §4.2.1); its `Sec-WebSocket-Key` if so.
fn websocket_key(req: &Request<Incoming>) -> Option<HeaderValue> {
    let h = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let ok = req.method() == Method::GET
        && has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
        && h.get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
    ok.then(|| h.get(header::SEC_WEBSOCKET_KEY).cloned())
        .flatten()
}

/// Accepts a WebSocket upgrade at `endpoint`: answers 101 and, once hyper hands the socket
/// back, runs the endpoint's protocol on it in a task of its own that holds `slot`.
fn upgrade(
    server: &Arc<Server>,
    slot: Arc<Slot>,
    from: SocketAddr,
    mut req: Request<Incoming>,
    endpoint: Endpoint,
) -> Response<Body> {
    let Some(key) = websocket_key(&req) else {
        let mut r = text(
            StatusCode::UPGRADE_REQUIRED,
            "a WebSocket endpoint (RFC 6455, version 13)\n",
        );
        r.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return r;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let server = server.clone();
    tokio::spawn(async move {
        let ws = match on_upgrade.await.map(|u| u.downcast::<TokioIo<TcpStream>>()) {
            Ok(Ok(parts)) => {
                let tcp = parts.io.into_inner();
                let config = match endpoint {
                    Endpoint::Sync => crate::net::ws_config(),
                    Endpoint::Hub => crate::hub::ws_config(),
                };
                websocket(tcp, parts.read_buf, config).await
            }
            Ok(Err(_)) => {
                tracing::error!("{from}: the upgraded connection is not a TCP stream");
                return;
            }
            Err(e) => {
                server
                    .unfinished
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!("{from}: websocket upgrade: {e}");
                return;
            }
        };
        match endpoint {
            Endpoint::Sync => crate::net::spawn_session(
                &server,
                slot,
                crate::net::Incoming::Ws(Box::new(ws)),
                from,
            ),
            Endpoint::Hub => {
                let Some(http) = &server.http else { return };
                let stopping = server.stopping.subscribe();
                crate::hub::serve_client(http.hub.clone(), ws, from, stopping).await;
                drop(slot);
            }
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// The WebSocket on `tcp`, given the bytes hyper read past the request (none from a client
/// that waits for the 101, as RFC 6455 asks).
async fn websocket(
    tcp: TcpStream,
    read: Bytes,
    config: WebSocketConfig,
) -> WebSocketStream<TcpStream> {
    if read.is_empty() {
        WebSocketStream::from_raw_socket(tcp, Role::Server, Some(config)).await
    } else {
        WebSocketStream::from_partially_read(tcp, read.to_vec(), Role::Server, Some(config)).await
    }
}

/// The page served at `/` without `--web`.
const NO_APP: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cairn serve</title></head>
<body>
<h1>cairn serve</h1>
<p>This server was started without a web app. Build it and serve its directory:</p>
<pre>bash scripts/build-web.sh
cairn serve --http 127.0.0.1:8080 --web target/www</pre>
<p>Replication (WebSocket, Noise) is at <code>/sync</code>: <code>cairn sync --connect ws://HOST:PORT/sync</code>.
The signalling hub is at <code>/hub</code>.</p>
</body></html>
";

/// The content type of a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        _ => "application/octet-stream",
    }
}

/// The relative path a request path names inside the web directory, or `None` when it
/// cannot name a file there: percent-decoded first (so `%2e%2e` and `%2f` are seen), then
/// split on `/`; a `..` or `.` segment, a segment starting with `.` (hidden files), a
/// backslash or a NUL refuse the path.
pub(crate) fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let mut rel = PathBuf::new();
    for seg in decoded.split('/').filter(|s| !s.is_empty()) {
        if seg.starts_with('.') || seg.contains(['\\', '\0']) {
            return None;
        }
        rel.push(seg);
    }
    Some(rel)
}

/// Answers `path` from the web directory `web` (the built-in page without one), with a
/// compressed copy of the file when the client accepts one of its `codings` and the copy is
/// made (`compress.rs`).
async fn static_file(
    web: Option<(&Path, Option<&Arc<Compressed>>)>,
    path: &str,
    get: bool,
    codings: &[Coding],
) -> Response<Body> {
    let Some((web, compressed)) = web else {
        return if path == "/" || path == "/index.html" {
            respond(
                full(NO_APP),
                "text/html; charset=utf-8",
                NO_APP.len() as u64,
            )
        } else {
            text(StatusCode::NOT_FOUND, "not found (no --web directory)\n")
        };
    };
    let Some(rel) = relative_path(path) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let app_path = rel
        .file_name()
        .is_none_or(|name| Path::new(name).extension().is_none());
    let mut file = web.join(&rel);
    if tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_dir()) {
        file.push("index.html");
    }
    let found = match open_inside(web, &file).await {
        Some(f) => Some((f, file)),
        // A path of the app (no extension) that is not a file: the app's page.
        None if app_path => {
            let index = web.join("index.html");
            open_inside(web, &index).await.map(|f| (f, index))
        }
        None => None,
    };
    let Some((opened, file)) = found else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    let ctype = content_type(&file);
    let copy = compressed.and_then(|c| c.get(&opened.real, &opened.meta, codings));
    let mut r = match copy {
        Some((coding, bytes)) => {
            let len = bytes.len() as u64;
            let body = if get { full(bytes) } else { full(Bytes::new()) };
            let mut r = respond(body, ctype, len);
            r.headers_mut().insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(coding.token()),
            );
            r
        }
        None => {
            let len = opened.meta.len();
            let body = if get {
                let stream = tokio_util::io::ReaderStream::with_capacity(opened.file, 64 << 10);
                use futures_util::TryStreamExt as _;
                BodyExt::boxed(StreamBody::new(stream.map_ok(Frame::data)))
            } else {
                full(Bytes::new())
            };
            respond(body, ctype, len)
        }
    };
    if compressed.is_some() && compress::compressible(&file) {
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    r
}

/// Bytes of a blob's body read ahead of a slow client, in chunks of this size (four of them).
const BLOB_CHUNK: usize = 64 << 10;

/// `GET /blob/HASH` (with `Range`): the blob store answers (`cairn_blob::http::respond`),
/// its body streamed from a blocking thread through a small bounded queue, so a large blob
/// never sits in memory and a slow client holds back only its own reader.
async fn blob(
    server: &Arc<Server>,
    hash: &str,
    range: Option<String>,
    get: bool,
) -> Response<Body> {
    let Some(store) = server.blobs.clone() else {
        return text(StatusCode::NOT_FOUND, "no blob store here\n");
    };
    let hash = hash.to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        cairn_blob::http::respond(&store, &hash, range.as_deref())
    })
    .await;
    let answer = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::warn!("blob: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "the blob store failed\n");
        }
        Err(_) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the blob reader failed\n",
            );
        }
    };
    let body = match (answer.body, get) {
        (Some(mut reader), true) => {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Frame<Bytes>>>(4);
            tokio::task::spawn_blocking(move || {
                use std::io::Read as _;
                loop {
                    let mut buf = vec![0u8; BLOB_CHUNK];
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            buf.truncate(n);
                            if tx.blocking_send(Ok(Frame::data(Bytes::from(buf)))).is_err() {
                                break; // the client went away
                            }
                        }
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            break;
                        }
                    }
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            BodyExt::boxed(StreamBody::new(stream))
        }
        _ => full(Bytes::new()),
    };
    let mut r = Response::new(body);
    *r.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            r.headers_mut().insert(n, v);
        }
    }
    r
}

/// A file opened by [`open_inside`].
struct Opened {
    file: tokio::fs::File,
    meta: std::fs::Metadata,
    /// Its real path (symbolic links resolved).
    real: PathBuf,
}

/// Opens `file` if it is a regular file whose real path (symbolic links resolved) is inside
/// `web` (already canonical).
async fn open_inside(web: &Path, file: &Path) -> Option<Opened> {
    let real = tokio::fs::canonicalize(file).await.ok()?;
    if !real.starts_with(web) {
        return None;
    }
    let f = tokio::fs::File::open(&real).await.ok()?;
    let meta = f.metadata().await.ok()?;
    meta.is_file().then_some(Opened {
        file: f,
        meta,
        real,
    })
}

/// A 200 answer with `body` (hyper sends no body for HEAD).
fn respond(body: Body, content_type: &'static str, len: u64) -> Response<Body> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../etc",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2fetc",
            "/..%2f..%2fetc",
            "/a/%2e%2e/%2e%2e/x",
            "/.git/config",
            "/a\\..\\b",
            "/%5c..%5cb",
            "/a%00b",
            "/%ff",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
        assert_eq!(
            relative_path("/pkg//cairn_web_bg.wasm"),
            Some(PathBuf::from("pkg/cairn_web_bg.wasm"))
        );
        assert_eq!(relative_path("/"), Some(PathBuf::new()));
        assert_eq!(
            relative_path("/wiki/Main%20Page"),
            Some(PathBuf::from("wiki/Main Page"))
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a/b.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("worker.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("index.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }
}
