//! The answer to an HTTP `GET /blob/HASH`, without an HTTP server: the caller (the HTTP
//! front of `cairn serve`) passes the path's hash and the `Range` header and writes out the
//! status, headers and body this returns.
//!
//! - `200` with the whole blob, or `206` with one byte range (`bytes=a-b`, `bytes=a-`,
//!   `bytes=-n`; several ranges are answered with the whole blob, as RFC 9110 allows);
//!   `416` for a range outside the blob; `404` for a blob not here (or not complete);
//!   `400` for a hash that is not 64 hex digits.
//! - `Content-Type` sniffed from the first bytes: PNG, JPEG, GIF, WebP; SVG as
//!   `image/svg+xml` only together with `Content-Security-Policy: sandbox` (an SVG may hold
//!   script); anything else `application/octet-stream`. Always `X-Content-Type-Options:
//!   nosniff`, `Accept-Ranges: bytes`, and an immutable cache (the name is the content's
//!   hash) with the hash as `ETag`.

use std::io::Read;

use crate::{BlobHash, BlobReader, BlobStore, StoreError};

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The body to stream (`None`: empty).
    pub body: Option<std::io::Take<BlobReader>>,
}

impl Response {
    fn plain(status: u16, text: &str) -> Response {
        Response {
            status,
            headers: vec![
                ("Content-Type", "text/plain; charset=utf-8".into()),
                ("Content-Length", text.len().to_string()),
            ],
            body: None,
        }
    }
}

/// The content type of a blob whose first bytes are `head`, and whether it needs the
/// sandbox CSP (SVG).
pub fn sniff(head: &[u8]) -> (&'static str, bool) {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        ("image/png", false)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ("image/jpeg", false)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        ("image/gif", false)
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        ("image/webp", false)
    } else if looks_like_svg(head) {
        ("image/svg+xml", true)
    } else {
        ("application/octet-stream", false)
    }
}

fn looks_like_svg(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    (t.starts_with("<?xml") || t.starts_with("<svg") || t.starts_with("<!--"))
        && text.contains("<svg")
}

/// Parses a single `bytes=` range against a blob of `size` bytes: `Ok(None)` for no
/// (usable) range header, `Err(())` for a range that cannot be satisfied.
fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(h) = header else { return Ok(None) };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            size
        } else {
            let last: u64 = b.parse().map_err(|_| ())?;
            if last < start {
                return Err(());
            }
            last.saturating_add(1).min(size)
        };
        (start, end)
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Answers `GET /blob/<hash>` with the given `Range` header.
pub fn respond(store: &BlobStore, hash: &str, range: Option<&str>) -> Result<Response, StoreError> {
    let Ok(h) = hash.parse::<BlobHash>() else {
        return Ok(Response::plain(400, "a blob hash is 64 hex digits\n"));
    };
    let Some(mut reader) = store.reader(&h)? else {
        return Ok(Response::plain(404, "no such blob here\n"));
    };
    let size = reader.len();
    let mut head = Vec::with_capacity(512);
    (&mut reader).take(512).read_to_end(&mut head)?;
    let (ctype, sandbox) = sniff(&head);
    let mut headers = vec![
        ("Content-Type", ctype.to_string()),
        ("X-Content-Type-Options", "nosniff".into()),
        ("Accept-Ranges", "bytes".into()),
        (
            "Cache-Control",
            "public, max-age=31536000, immutable".into(),
        ),
        ("ETag", format!("\"{h}\"")),
    ];
    if sandbox {
        headers.push(("Content-Security-Policy", "sandbox".into()));
    }
    let (status, start, end) = match parse_range(range, size) {
        Ok(None) => (200, 0, size),
        Ok(Some((s, e))) => {
            headers.push(("Content-Range", format!("bytes {s}-{}/{size}", e - 1)));
            (206, s, e)
        }
        Err(()) => {
            let mut r = Response::plain(416, "range not satisfiable\n");
            r.headers.push(("Content-Range", format!("bytes */{size}")));
            return Ok(r);
        }
    };
    headers.push(("Content-Length", (end - start).to_string()));
    let body = store.read_range(&h, start..end)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-"), 10), Ok(Some((0, 10))));
        assert_eq!(parse_range(Some("bytes=2-4"), 10), Ok(Some((2, 5))));
        assert_eq!(parse_range(Some("bytes=2-400"), 10), Ok(Some((2, 10))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Err(()));
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), ("image/png", false));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), ("image/jpeg", false));
        assert_eq!(sniff(b"GIF89a.."), ("image/gif", false));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), ("image/webp", false));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"...\"><script/></svg>"),
            ("image/svg+xml", true)
        );
        assert_eq!(
            sniff(b"<html><script>"),
            ("application/octet-stream", false)
        );
        assert_eq!(sniff(b""), ("application/octet-stream", false));
    }
}
