//! Load on `cairn serve`'s signalling hub: N clients connect to `/hub`, each joins one of T
//! topics and stays; once all have joined, each sends one signed offer to the next member
//! of its topic, and every relay is received and its signature checked. Prints one JSON
//! line; with `--pid PID`, the server's resident memory (VmRSS, and VmHWM, the peak) while
//! all clients are held. `scripts/bench-hub.sh` starts the server and runs it.
//!
//! cargo run --release -p cairn-cli --example hub_load -- HOST:PORT [--clients N]
//!     [--topics T] [--hold SECS] [--pid PID]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_core::Keypair;
use cairn_signal::{Action, ClientMessage, HubMessage, SignalKind, Topic};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

struct Args {
    addr: String,
    clients: usize,
    topics: usize,
    hold: u64,
    pid: Option<u32>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        addr: String::new(),
        clients: 1000,
        topics: 10,
        hold: 2,
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().context("a flag without its value");
        match x.as_str() {
            "--clients" => a.clients = val()?.parse()?,
            "--topics" => a.topics = val()?.parse()?,
            "--hold" => a.hold = val()?.parse()?,
            "--pid" => a.pid = Some(val()?.parse()?),
            _ if a.addr.is_empty() => a.addr = x,
            _ => bail!(
                "usage: hub_load HOST:PORT [--clients N] [--topics T] [--hold SECS] [--pid PID]"
            ),
        }
    }
    if a.addr.is_empty() || a.topics == 0 {
        bail!("usage: hub_load HOST:PORT [--clients N] [--topics T] [--hold SECS] [--pid PID]");
    }
    Ok(a)
}

/// A line of `/proc/PID/status` in MB.
fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws) -> Result<HubMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .context("the hub was silent for 60 s")?
        {
            Some(Ok(Message::Binary(b))) => return Ok(HubMessage::decode(&b)?),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => bail!("the hub ended the connection: {other:?}"),
        }
    }
}

fn main() -> Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(a))
}

async fn run(a: Args) -> Result<()> {
    let idle_rss = a.pid.and_then(|p| status_mb(p, "VmRSS:"));
    let url = format!("ws://{}/hub", a.addr);
    let keys: Vec<Keypair> = (0..a.clients)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            seed[8] = 0xb5;
            Keypair::from_seed(seed)
        })
        .collect();
    let topic_of = |i: usize| Topic::of_swarm(&format!("bench topic {}", i % a.topics));
    // Each client's successor in its topic (the members of topic t are t, t+T, t+2T, …).
    let next_of = |i: usize| {
        let n = i + a.topics;
        if n < a.clients { n } else { i % a.topics }
    };
    let joined = std::sync::Arc::new(tokio::sync::Barrier::new(a.clients + 1));
    let go = std::sync::Arc::new(tokio::sync::Barrier::new(a.clients + 1));
    let done = std::sync::Arc::new(tokio::sync::Barrier::new(a.clients + 1));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(a.clients);
    for (i, key) in keys.iter().enumerate() {
        let (url, key) = (url.clone(), key.clone());
        let to = keys[next_of(i)].public();
        let topic = topic_of(i);
        let (joined, go, done) = (joined.clone(), go.clone(), done.clone());
        let lone = next_of(i) == i;
        tasks.push(tokio::spawn(async move {
            // Which barriers this client has passed: a client that fails still meets the
            // others at the rest, so that one failure is reported instead of hanging the run.
            let mut passed = 0;
            let result = async {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
                let HubMessage::Welcome { challenge } = recv(&mut ws).await? else {
                    bail!("no welcome");
                };
                let join = ClientMessage::sign(&key, &challenge, 1, topic, Action::Join);
                ws.send(Message::binary(join.encode())).await?;
                let members = async {
                    loop {
                        if let HubMessage::Members { .. } = recv(&mut ws).await? {
                            break anyhow::Ok(());
                        }
                    }
                };
                tokio::time::timeout(Duration::from_secs(60), members)
                    .await
                    .context("no member list within 60 s")??;
                let join_ms = start.elapsed().as_secs_f64() * 1e3;
                joined.wait().await;
                passed = 1;
                go.wait().await;
                passed = 2;
                let offer = ClientMessage::sign(
                    &key,
                    &challenge,
                    2,
                    topic,
                    Action::Signal {
                        to,
                        kind: SignalKind::Offer,
                        payload: vec![b'x'; 600],
                    },
                );
                let mut relayed = 0u64;
                if !lone {
                    ws.send(Message::binary(offer.encode())).await?;
                    // One offer from the predecessor; announcements of others' joins may come
                    // first.
                    let relay = async {
                        loop {
                            if let HubMessage::Relay(r) = recv(&mut ws).await? {
                                r.verify(&key.public())?;
                                break anyhow::Ok(());
                            }
                        }
                    };
                    tokio::time::timeout(Duration::from_secs(60), relay)
                        .await
                        .context("no offer relayed within 60 s")??;
                    relayed += 1;
                }
                anyhow::Ok((join_ms, relayed, ws))
            }
            .await;
            for barrier in [&joined, &go].into_iter().skip(passed) {
                barrier.wait().await;
            }
            done.wait().await;
            result
        }));
    }
    joined.wait().await;
    let all_joined = start.elapsed();
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let held_rss = a.pid.and_then(|p| status_mb(p, "VmRSS:"));
    let go_at = Instant::now();
    go.wait().await;
    done.wait().await;
    let relays = go_at.elapsed();
    let peak = a.pid.and_then(|p| status_mb(p, "VmHWM:"));
    let mut join_ms = Vec::new();
    let mut relayed = 0;
    let mut sockets = Vec::new();
    let mut failed = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await? {
            Ok((ms, r, ws)) => {
                join_ms.push(ms);
                relayed += r;
                sockets.push(ws);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    join_ms.sort_by(f64::total_cmp);
    let p = |q: f64| {
        join_ms
            .get(((join_ms.len().max(1) - 1) as f64 * q) as usize)
            .copied()
    };
    println!(
        "{}",
        serde_json::json!({
            "clients": a.clients,
            "topics": a.topics,
            "all_joined_ms": all_joined.as_millis(),
            "join_ms_median": p(0.5),
            "join_ms_p99": p(0.99),
            "offers_relayed_and_verified": relayed,
            "clients_failed": failed,
            "first_error": first_error,
            "relay_round_ms": relays.as_millis(),
            "server_rss_idle_mb": idle_rss,
            "server_rss_held_mb": held_rss,
            "server_peak_mb": peak,
        })
    );
    drop(sockets);
    Ok(())
}
