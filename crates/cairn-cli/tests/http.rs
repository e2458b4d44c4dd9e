//! `cairn serve --http`: static files (and traversal attempts), replication at `/sync`, and
//! the signalling hub at `/hub` with honest and hostile clients — all against a real
//! `cairn serve` on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use cairn_core::{Keypair, PublicKey};
use cairn_signal::{Action, Challenge, ClientMessage, ErrorCode, HubMessage, SignalKind, Topic};
use common::{Server, cairn, ok, start_serve};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// A running `cairn serve` and `HOST:PORT` of its HTTP listener.
struct Served {
    _server: Server,
    http: String,
}

fn base(name: &str) -> std::path::PathBuf {
    let b = std::env::temp_dir().join(format!("cairn-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&b);
    std::fs::create_dir_all(&b).unwrap();
    b
}

/// Starts `cairn serve --http 127.0.0.1:0` on a new store under `dir`, with `args`.
fn serve(dir: &std::path::Path, args: &[&str]) -> Served {
    let data = dir.join("server");
    ok(cairn(&data).arg("init"));
    ok(cairn(&data).args(["log", "append", "from the server"]));
    let mut all = vec!["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let (server, a) = start_serve(&data, &all, 2);
    let http = a[1]
        .strip_prefix("http://")
        .and_then(|h| h.strip_suffix('/'))
        .unwrap_or_else(|| panic!("not an http URL: {:?}", a[1]))
        .to_string();
    Served {
        _server: server,
        http,
    }
}

/// One raw HTTP/1.1 request; the response head and the body.
fn request(addr: &str, method: &str, request_target: &str, extra: &str) -> (String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {request_target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&resp)));
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    (head, resp[split + 4..].to_vec())
}

/// A GET; the status code, the content type and the body.
fn get(addr: &str, request_target: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let (head, body) = request(addr, "GET", request_target, extra);
    let status = head[9..12].parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ctype, body)
}

#[test]
fn static_files_and_traversal() {
    let b = base("static");
    let web = b.join("www");
    std::fs::create_dir_all(web.join("pkg")).unwrap();
    std::fs::write(web.join("index.html"), "<h1>the app</h1>").unwrap();
    std::fs::write(web.join("pkg/cairn_web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(web.join("worker.js"), "postMessage(1)").unwrap();
    std::fs::write(web.join(".hidden"), "no").unwrap();
    std::fs::write(b.join("secret.txt"), "SECRET").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(b.join("secret.txt"), web.join("link.txt")).unwrap();
    let server = serve(&b, &["--web", web.to_str().unwrap()]);
    let a = server.http.as_str();

    let (s, t, body) = get(a, "/", "");
    assert_eq!(
        (s, t.as_str(), body.as_slice()),
        (200, "text/html; charset=utf-8", &b"<h1>the app</h1>"[..])
    );
    let (s, t, body) = get(a, "/pkg/cairn_web_bg.wasm", "");
    assert_eq!((s, t.as_str()), (200, "application/wasm"));
    assert_eq!(body, b"\0asm\x01\0\0\0");
    assert_eq!(get(a, "/worker.js", "").1, "text/javascript; charset=utf-8");
    // A path of the app: its page.
    let (s, _, body) = get(a, "/wiki/Main_Page", "");
    assert_eq!((s, body.as_slice()), (200, &b"<h1>the app</h1>"[..]));
    // A missing asset: not found.
    assert_eq!(get(a, "/pkg/missing.js", "").0, 404);
    // Traversal, plain and encoded, hidden files, a link out of the directory.
    for bad in [
        "/../secret.txt",
        "/pkg/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/pkg/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/.hidden",
        "/link.txt",
    ] {
        let (s, _, body) = get(a, bad, "");
        assert!(s == 404 || s == 400, "{bad}: {s}");
        assert!(!String::from_utf8_lossy(&body).contains("SECRET"), "{bad}");
    }
    // Only GET and HEAD.
    let mut s = std::net::TcpStream::connect(a).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    // An oversize request head is refused, and the server goes on serving.
    let big = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let mut s = std::net::TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = write!(s, "GET / HTTP/1.1\r\nHost: x\r\n{big}\r\n");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(!resp.contains("the app"), "{resp}");
    assert_eq!(get(a, "/", "").0, 200);
    // Not a WebSocket request at the WebSocket endpoints.
    assert_eq!(get(a, "/sync", "").0, 426);
    assert_eq!(get(a, "/hub", "").0, 426);
}

/// `cairn serve` with blobs added to its store beforehand.
fn serve_with_blobs(dir: &std::path::Path, files: &[(&str, &[u8])]) -> (Served, Vec<String>) {
    let data = dir.join("server");
    ok(cairn(&data).arg("init"));
    let mut hashes = Vec::new();
    for (name, bytes) in files {
        let f = dir.join(name);
        std::fs::write(&f, bytes).unwrap();
        let out = ok(cairn(&data).args(["blob", "add"]).arg(&f));
        hashes.push(out.trim().to_string());
    }
    (serve(dir, &[]), hashes)
}

#[test]
fn blobs_over_http_with_ranges_and_types() {
    let b = base("blob");
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0..300_000u32).map(|i| (i * 7 % 251) as u8))
        .collect();
    let svg: &[u8] = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    let (server, h) = serve_with_blobs(&b, &[("a.png", &png), ("b.svg", svg)]);
    let a = server.http.as_str();
    // The whole large blob, streamed, byte for byte.
    let (s, t, body) = get(a, &format!("/blob/{}", h[0]), "");
    assert_eq!((s, t.as_str()), (200, "image/png"));
    assert_eq!(body, png);
    // A range.
    let (s, _, body) = get(
        a,
        &format!("/blob/{}", h[0]),
        "Range: bytes=100000-100009\r\n",
    );
    assert_eq!(s, 206);
    assert_eq!(body, &png[100_000..100_010]);
    // Past the end.
    assert_eq!(
        get(a, &format!("/blob/{}", h[0]), "Range: bytes=999999999-\r\n").0,
        416
    );
    // An SVG is served sandboxed (its script cannot run as this origin).
    let mut s = std::net::TcpStream::connect(a).unwrap();
    write!(
        s,
        "GET /blob/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        h[1]
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let head = resp.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.contains("content-type: image/svg+xml"), "{head}");
    assert!(head.contains("content-security-policy: sandbox"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    // Missing and malformed hashes.
    assert_eq!(get(a, &format!("/blob/{}", "0".repeat(64)), "").0, 404);
    assert_eq!(get(a, "/blob/not-a-hash", "").0, 400);
}

#[test]
fn without_web_a_page_says_how_to_build_the_app() {
    let b = base("noweb");
    let server = serve(&b, &[]);
    let (s, t, body) = get(&server.http, "/", "");
    assert_eq!((s, t.as_str()), (200, "text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&body).contains("scripts/build-web.sh"));
    assert_eq!(get(&server.http, "/index.js", "").0, 404);
}

#[test]
fn cairn_sync_works_at_slash_sync() {
    let b = base("sync");
    let server = serve(&b, &[]);
    let client = b.join("client");
    ok(cairn(&client).arg("init"));
    ok(cairn(&client).args(["log", "append", "from the client"]));
    let url = format!("ws://{}/sync", server.http);
    let out = cairn(&client)
        .args(["sync", "--connect", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changes = ok(cairn(&client).args(["log", "changes"]));
    assert!(changes.contains("from the server"), "{changes}");
    // The server got the client's node too: a second client sees it.
    let other = b.join("other");
    ok(cairn(&other).arg("init"));
    ok(cairn(&other).args(["sync", "--connect", &url]));
    let changes = ok(cairn(&other).args(["log", "changes"]));
    assert!(changes.contains("from the client"), "{changes}");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A signalling client.
struct Client {
    ws: Ws,
    key: Keypair,
    challenge: Challenge,
    counter: u64,
}

const WAIT: Duration = Duration::from_secs(10);

impl Client {
    async fn connect(addr: &str, seed: u8) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/hub"))
            .await
            .unwrap();
        let mut c = Client {
            ws,
            key: Keypair::from_seed([seed; 32]),
            challenge: Challenge([0; 32]),
            counter: 0,
        };
        match c.recv().await {
            Some(HubMessage::Welcome { challenge }) => c.challenge = challenge,
            other => panic!("expected a welcome, got {other:?}"),
        }
        c
    }

    fn me(&self) -> PublicKey {
        self.key.public()
    }

    fn sign(&mut self, topic: Topic, action: Action) -> ClientMessage {
        self.counter += 1;
        ClientMessage::sign(&self.key, &self.challenge, self.counter, topic, action)
    }

    async fn send(&mut self, topic: Topic, action: Action) {
        let m = self.sign(topic, action);
        self.raw(m.encode()).await;
    }

    async fn raw(&mut self, bytes: Vec<u8>) {
        // A send may fail once the hub dropped us; what follows checks that.
        let _ = self.ws.send(Message::binary(bytes)).await;
    }

    /// The next hub message; `None` when the connection ends.
    async fn recv(&mut self) -> Option<HubMessage> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("hub silent")
            {
                Some(Ok(Message::Binary(b))) => return Some(HubMessage::decode(&b).unwrap()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(m)) => panic!("unexpected {m:?}"),
            }
        }
    }

    /// The next message that is not a join or leave announcement.
    async fn recv_skipping_members(&mut self) -> Option<HubMessage> {
        loop {
            match self.recv().await {
                Some(HubMessage::PeerJoined { .. } | HubMessage::PeerLeft { .. }) => continue,
                m => return m,
            }
        }
    }

    /// Waits for the announcement that `peer` joined.
    async fn joined(&mut self, peer: PublicKey) {
        loop {
            match self.recv().await {
                Some(HubMessage::PeerJoined { peer: p, .. }) if p == peer => return,
                Some(HubMessage::PeerJoined { .. } | HubMessage::PeerLeft { .. }) => continue,
                other => panic!("expected {peer} to join, got {other:?}"),
            }
        }
    }

    async fn join(&mut self, topic: Topic) -> Vec<PublicKey> {
        self.send(topic, Action::Join).await;
        match self.recv().await {
            Some(HubMessage::Members { topic: t, peers }) if t == topic => peers,
            other => panic!("expected members, got {other:?}"),
        }
    }

    async fn signal(&mut self, topic: Topic, to: PublicKey, kind: SignalKind, payload: &[u8]) {
        self.send(
            topic,
            Action::Signal {
                to,
                kind,
                payload: payload.to_vec(),
            },
        )
        .await;
    }

    /// Expects to be dropped for `why`: an error naming it, then the end.
    async fn dropped(&mut self, why: &str) {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Some(HubMessage::Error {
                    code: ErrorCode::Dropped,
                    text,
                    ..
                }) => {
                    assert!(text.contains(why), "dropped for {text}, expected {why}");
                    assert_eq!(self.recv().await, None, "the connection ends");
                    return;
                }
                None => panic!("closed without saying why (expected {why}; got {seen:?})"),
                Some(m) => seen.push(m),
            }
        }
    }
}

/// A and B meet on a topic and exchange an offer and an answer, each checking the other's
/// signature; C, on another topic, hears nothing of it.
async fn exchange(addr: &str, seeds: (u8, u8)) {
    let topic = Topic::of_swarm(&format!("swarm {seeds:?}"));
    let mut a = Client::connect(addr, seeds.0).await;
    let mut b = Client::connect(addr, seeds.1).await;
    assert_eq!(a.join(topic).await, vec![]);
    assert_eq!(b.join(topic).await, vec![a.me()]);
    assert_eq!(
        a.recv().await,
        Some(HubMessage::PeerJoined {
            topic,
            peer: b.me()
        })
    );
    a.signal(topic, b.me(), SignalKind::Offer, b"v=0 offer")
        .await;
    let Some(HubMessage::Relay(relay)) = b.recv().await else {
        panic!("expected a relay");
    };
    assert_eq!(
        relay.verify(&b.me()),
        Ok((a.me(), SignalKind::Offer, &b"v=0 offer"[..]))
    );
    b.signal(topic, a.me(), SignalKind::Answer, b"v=0 answer")
        .await;
    let Some(HubMessage::Relay(relay)) = a.recv().await else {
        panic!("expected a relay");
    };
    assert_eq!(
        relay.verify(&a.me()),
        Ok((b.me(), SignalKind::Answer, &b"v=0 answer"[..]))
    );
    b.signal(topic, a.me(), SignalKind::Candidate, b"candidate:1")
        .await;
    assert!(matches!(a.recv().await, Some(HubMessage::Relay(_))));
    // B leaves: A hears it.
    drop(b);
    assert_eq!(
        a.recv().await,
        Some(HubMessage::PeerLeft {
            topic,
            peer: Keypair::from_seed([seeds.1; 32]).public()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_an_offer_and_an_answer() {
    let b = base("hub");
    let server = serve(&b, &[]);
    exchange(&server.http, (1, 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_are_refused_or_dropped_and_the_hub_keeps_serving() {
    let b = base("hostile");
    let server = serve(&b, &["--hub-burst", "50", "--hub-rate", "10"]);
    let addr = server.http.as_str();
    let topic = Topic::of_swarm("hostile");
    // An honest member, there all along.
    let mut honest = Client::connect(addr, 10).await;
    honest.join(topic).await;

    // Forged: a join naming the honest key, signed by another.
    let mut f = Client::connect(addr, 11).await;
    let mut m = f.sign(topic, Action::Join);
    m.from = honest.me();
    f.raw(m.encode()).await;
    f.dropped("forged").await;

    // Replayed on the same connection: the counter does not grow.
    let mut r = Client::connect(addr, 12).await;
    let join = r.sign(topic, Action::Join);
    r.raw(join.encode()).await;
    assert!(matches!(r.recv().await, Some(HubMessage::Members { .. })));
    r.raw(join.encode()).await;
    r.dropped("replayed").await;
    // Replayed on another connection (signed over the first one's challenge).
    let mut r2 = Client::connect(addr, 13).await;
    r2.raw(join.encode()).await;
    r2.dropped("forged").await;

    // Another key than the connection's own after its first message.
    let mut w = Client::connect(addr, 14).await;
    w.join(topic).await;
    let other = Keypair::from_seed([15; 32]);
    w.counter += 1;
    let m = ClientMessage::sign(&other, &w.challenge, w.counter, topic, Action::Leave);
    w.raw(m.encode()).await;
    w.dropped("wrong key").await;

    // Malformed: garbage, a text message.
    let mut g = Client::connect(addr, 16).await;
    g.raw(vec![1, 3, 0xff, 0xff]).await;
    g.dropped("malformed").await;
    let mut t = Client::connect(addr, 17).await;
    let _ = t.ws.send(Message::text("{\"join\": 1}")).await;
    t.dropped("malformed").await;

    // Oversize: a 1 MiB message, refused as its header arrives.
    let mut o = Client::connect(addr, 18).await;
    o.raw(vec![1; 1 << 20]).await;
    loop {
        match o.recv().await {
            None => break,
            Some(HubMessage::Error { code, text, .. }) => {
                assert_eq!(code, ErrorCode::Dropped);
                assert!(text.contains("oversize"), "{text}");
            }
            Some(m) => panic!("unexpected {m:?}"),
        }
    }

    // Wrong topic: a signal on a topic not joined is refused; the client stays.
    let mut x = Client::connect(addr, 19).await;
    x.join(topic).await;
    honest.joined(x.me()).await;
    let elsewhere = Topic::of_swarm("elsewhere");
    x.signal(elsewhere, honest.me(), SignalKind::Offer, b"x")
        .await;
    match x.recv().await {
        Some(HubMessage::Error {
            code: ErrorCode::NotMember,
            counter,
            ..
        }) => assert_eq!(counter, x.counter),
        other => panic!("expected not-a-member, got {other:?}"),
    }
    // A signal to a key not in the topic: refused, the client stays.
    x.signal(
        topic,
        Keypair::from_seed([99; 32]).public(),
        SignalKind::Offer,
        b"x",
    )
    .await;
    assert!(matches!(
        x.recv().await,
        Some(HubMessage::Error {
            code: ErrorCode::NoSuchPeer,
            ..
        })
    ));
    // Still a member: its signal reaches the honest client.
    x.signal(topic, honest.me(), SignalKind::Offer, b"hello")
        .await;
    let Some(HubMessage::Relay(relay)) = honest.recv_skipping_members().await else {
        panic!("expected a relay");
    };
    assert_eq!(relay.verify(&honest.me()).unwrap().2, b"hello");

    // Flooding: far more messages than the burst, at once.
    let mut fl = Client::connect(addr, 20).await;
    fl.join(topic).await;
    honest.joined(fl.me()).await;
    for _ in 0..200 {
        fl.signal(
            topic,
            Keypair::from_seed([98; 32]).public(),
            SignalKind::Candidate,
            b"c",
        )
        .await;
    }
    fl.dropped("too fast").await;
    // Its leave was announced.
    loop {
        match honest.recv().await {
            Some(HubMessage::PeerLeft { peer, .. }) if peer == fl.me() => break,
            Some(HubMessage::PeerLeft { .. }) => continue,
            other => panic!("expected the flooder's leave, got {other:?}"),
        }
    }

    // The hub still serves: a fresh pair meets and exchanges.
    exchange(addr, (30, 31)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_on_clients_topics_and_members() {
    let b = base("caps");
    let server = serve(
        &b,
        &[
            "--hub-max-per-ip",
            "3",
            "--hub-topics-per-client",
            "2",
            "--hub-members-per-topic",
            "2",
        ],
    );
    let addr = server.http.as_str();
    let mut a = Client::connect(addr, 1).await;
    let mut b2 = Client::connect(addr, 2).await;
    let mut c = Client::connect(addr, 3).await;
    // A fourth client from the same address is closed without a welcome.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/hub"))
        .await
        .unwrap();
    let next = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(
        !matches!(next, Some(Ok(Message::Binary(_)))),
        "a client over the cap got {next:?}"
    );
    // Topics per client.
    let (t1, t2, t3) = (
        Topic::of_swarm("1"),
        Topic::of_swarm("2"),
        Topic::of_swarm("3"),
    );
    a.join(t1).await;
    a.join(t2).await;
    a.send(t3, Action::Join).await;
    assert!(matches!(
        a.recv().await,
        Some(HubMessage::Error {
            code: ErrorCode::TooManyTopics,
            ..
        })
    ));
    // Members per topic.
    b2.join(t1).await;
    assert!(matches!(
        a.recv().await,
        Some(HubMessage::PeerJoined { .. })
    ));
    c.send(t1, Action::Join).await;
    assert!(matches!(
        c.recv().await,
        Some(HubMessage::Error {
            code: ErrorCode::TopicFull,
            ..
        })
    ));
    // When one leaves, there is room again.
    b2.send(t1, Action::Leave).await;
    assert!(matches!(a.recv().await, Some(HubMessage::PeerLeft { .. })));
    assert_eq!(c.join(t1).await, vec![a.me()]);
    // The client over the cap's place is free once one goes.
    drop(b2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut d = Client::connect(addr, 4).await;
    assert_eq!(d.join(t2).await, vec![a.me()]);
}

/// The web directory's files are served compressed (brotli, else gzip) to clients that
/// accept it, as they are to others, and each copy decodes to the file.
#[test]
fn static_files_are_served_compressed_to_clients_that_accept_it() {
    use std::io::Read as _;
    let b = base("compressed");
    let web = b.join("www");
    std::fs::create_dir_all(web.join("pkg")).unwrap();
    let js: String = (0..30_000)
        .map(|i| format!("const v{i} = {};\n", i % 13))
        .collect();
    std::fs::write(web.join("pkg/app.js"), &js).unwrap();
    std::fs::write(web.join("index.html"), "<h1>the app</h1>").unwrap();
    std::fs::write(web.join("photo.png"), b"\x89PNG\r\n\x1a\n").unwrap();
    let server = serve(&b, &["--web", web.to_str().unwrap()]);
    let a = server.http.as_str();
    // The response head (lower case) and the body.
    let fetch = |target: &str, extra: &str, method: &str| -> (String, Vec<u8>) {
        let (head, body) = request(a, method, target, extra);
        (head.to_ascii_lowercase(), body)
    };
    // The copies are made in the background at start: wait for brotli's.
    let mut head = String::new();
    let mut body = Vec::new();
    for _ in 0..200 {
        (head, body) = fetch(
            "/pkg/app.js",
            "Accept-Encoding: gzip, deflate, br\r\n",
            "GET",
        );
        if head.contains("content-encoding: br") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{head}"
    );
    assert!(body.len() * 10 < js.len(), "{} of {}", body.len(), js.len());
    let mut out = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, js.as_bytes());
    // gzip to a client without brotli; HEAD says the same length and sends no body.
    let (head, body) = fetch("/pkg/app.js", "Accept-Encoding: gzip\r\n", "GET");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, js.as_bytes());
    let (h, b2) = fetch("/pkg/app.js", "Accept-Encoding: gzip\r\n", "HEAD");
    assert!(
        h.contains(&format!("content-length: {}", body.len())),
        "{h}"
    );
    assert!(b2.is_empty());
    // As it is: no Accept-Encoding, a refused coding, an image.
    for extra in [
        "",
        "Accept-Encoding: identity\r\n",
        "Accept-Encoding: br;q=0, gzip;q=0\r\n",
    ] {
        let (head, body) = fetch("/pkg/app.js", extra, "GET");
        assert!(!head.contains("content-encoding"), "{extra}: {head}");
        assert_eq!(body, js.as_bytes());
    }
    let (head, body) = fetch("/photo.png", "Accept-Encoding: br, gzip\r\n", "GET");
    assert!(
        !head.contains("content-encoding") && !head.contains("vary"),
        "{head}"
    );
    assert_eq!(body, b"\x89PNG\r\n\x1a\n");
    // The app's page for an app path, compressed too once made.
    let (head, _) = fetch("/wiki/Home", "Accept-Encoding: gzip\r\n", "GET");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // A rebuilt file: served as it is now, never the old copy.
    let js2 = format!("{js}// rebuilt\n");
    std::fs::write(web.join("pkg/app.js"), &js2).unwrap();
    let (head, body) = fetch("/pkg/app.js", "Accept-Encoding: br, gzip\r\n", "GET");
    let decoded = if head.contains("content-encoding: br") {
        let mut out = Vec::new();
        brotli::Decompressor::new(&body[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else if head.contains("content-encoding: gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        body
    };
    assert_eq!(decoded, js2.as_bytes());
}
