//! A real `kill -9` of a process appending in a loop, many times: every append the process
//! acknowledged (printed) is in the store afterwards, and the store opens.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_core::Hash;
use cairn_log::{ChangesQuery, Log, LogOptions};

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn kill_minus_nine_loses_no_acknowledged_append() {
    let dir = std::env::temp_dir().join(format!("cairn-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let st = cairn()
        .arg("--data")
        .arg(&dir)
        .arg("init")
        .output()
        .unwrap();
    assert!(st.status.success());

    let rounds = if std::env::var_os("CI").is_some() {
        25
    } else {
        12
    };
    let mut acked: Vec<Hash> = Vec::new();
    for round in 0..rounds {
        let mut child = cairn()
            .arg("--data")
            .arg(&dir)
            .args(["log", "append", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            for i in 0.. {
                if writeln!(stdin, "round {round} value {i}").is_err() {
                    break;
                }
            }
        });
        // Read acknowledgements as they come; once the first one is in (a loaded machine
        // can take a second to start the process and open the store), let it run a varying
        // while, so the kill lands at a different point of a commit each time.
        let run_for = Duration::from_millis(30 + (round as u64 * 37) % 150);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.parse::<Hash>().unwrap());
            }
        });
        let mut got = Vec::new();
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(first) => got.push(first),
            Err(e) => panic!("no append acknowledged within 60 s in round {round}: {e}"),
        }
        let start = Instant::now();
        while start.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SIGKILL: no destructors, no flush, no clean shutdown.
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        feeder.join().unwrap();
        got.extend(rx.try_iter());
        acked.extend(got);

        let log = Log::open(dir.join("log.redb"), LogOptions::default())
            .unwrap_or_else(|e| panic!("store does not open after kill -9 in round {round}: {e}"));
        for k in &acked {
            assert!(
                log.has(k).unwrap(),
                "acknowledged append {k} lost (round {round})"
            );
        }
        let mut n = 0u64;
        for e in log.changes(ChangesQuery::all()) {
            e.unwrap();
            n += 1;
        }
        assert_eq!(n, log.len());
    }
    assert!(
        acked.len() > rounds,
        "the appender made progress ({} appends)",
        acked.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
