#!/usr/bin/env python3
"""Full clone over TCP loopback between two real cairn processes (see bench-clone.sh).

For each N: a source store of N signed nodes with 32-byte values (`cairn log append --stdin`,
one writer's chain), its sync index built by a first `cairn serve` start (timed), then a
measured `cairn serve` and `cairn sync --connect tcp://` into an empty store, then an
already-equal re-sync. Peak RSS of each side is its own ru_maxrss (wait4; this script
keeps itself small, as a child's figure starts from its parent's size at fork), so each figure
is one process: the server (sender) from its start, the client (receiver) for the clone.
Prints a markdown table and one JSON line per N.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def wait_rusage(p):
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru


def start_server(cairn, data, log):
    srv = subprocess.Popen(
        [cairn, "--data", data, "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),
        text=True,
    )
    addr = srv.stdout.readline().strip()
    if not addr:
        raise SystemExit(f"cairn serve did not start: see {log}")
    return srv, addr


def stop_server(srv):
    srv.send_signal(signal.SIGTERM)
    ru = wait_rusage(srv)
    return ru.ru_maxrss / 1024


def sync(cairn, data, addr):
    t = time.monotonic()
    cli = subprocess.Popen(
        [cairn, "--data", data, "sync", "--connect", f"tcp://{addr}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    err = cli.stderr.read()
    ru = wait_rusage(cli)
    secs = time.monotonic() - t
    if cli.returncode != 0:
        raise SystemExit(f"cairn sync failed ({cli.returncode}):\n{err}")
    summary = json.loads(err.strip().splitlines()[-1])
    return secs, ru.ru_maxrss / 1024, summary


def bench(cairn, tmp, n):
    root = os.path.join(tmp, f"clone-{n}")
    shutil.rmtree(root, ignore_errors=True)
    a, b = os.path.join(root, "a"), os.path.join(root, "b")
    for d in (a, b):
        run([cairn, "--data", d, "init"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Values are written in chunks: this process must stay small, since a child's ru_maxrss
    # starts from its parent's resident size at fork.
    t = time.monotonic()
    fill_p = subprocess.Popen(
        [cairn, "--data", a, "log", "append", "--stdin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    for start in range(0, n, 10000):
        chunk = "".join(f"value-{i:026d}\n" for i in range(start, min(n, start + 10000)))
        fill_p.stdin.write(chunk.encode())
    fill_p.stdin.close()
    if fill_p.wait() != 0:
        raise SystemExit("cairn log append --stdin failed")
    fill = time.monotonic() - t
    # First start: builds the sync index (a serving peer keeps it current as it writes).
    t = time.monotonic()
    srv, _ = start_server(cairn, a, os.path.join(root, "serve-index.log"))
    index = time.monotonic() - t
    stop_server(srv)

    srv, addr = start_server(cairn, a, os.path.join(root, "serve.log"))
    secs, client_mb, s = sync(cairn, b, addr)
    equal_secs, _, eq = sync(cairn, b, addr)
    server_mb = stop_server(srv)
    size = sum(os.path.getsize(os.path.join(b, f)) for f in os.listdir(b))
    r = {
        "n": n,
        "fill_s": round(fill, 2),
        "index_s": round(index, 2),
        "clone_s": round(secs, 2),
        "clone_nodes_per_s": round(n / secs),
        "wire_bytes_per_node": round(s["bytes_received"] / n, 1),
        "client_peak_mb": round(client_mb, 1),
        "server_peak_mb": round(server_mb, 1),
        "round_trips": s["round_trips"],
        "equal_bytes_each_way": [eq["bytes_sent"], eq["bytes_received"]],
        "equal_round_trips": eq["round_trips"],
        "equal_ms": round(equal_secs * 1000),
        "store_mb": round(size / 2**20, 1),
        "summary": s,
    }
    if s["nodes_received"] != n:
        raise SystemExit(f"the clone received {s['nodes_received']} of {n} nodes")
    shutil.rmtree(root, ignore_errors=True)
    return r


def main():
    cairn = sys.argv[1]
    tmp = sys.argv[2]
    sizes = [int(x) for x in sys.argv[3:]] or [100000]
    rows = [bench(cairn, tmp, n) for n in sizes]
    cpus = os.cpu_count()
    print(f"Full clone over TCP loopback (Noise), two cairn processes, {cpus} cores:\n")
    print("| N | clone | nodes/s | wire B/node | receiver peak | sender peak | equal re-sync |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        eq = r["equal_bytes_each_way"]
        print(
            f"| {r['n']:,} | {r['clone_s']} s | {r['clone_nodes_per_s']:,} | "
            f"{r['wire_bytes_per_node']} | {r['client_peak_mb']} MB | {r['server_peak_mb']} MB | "
            f"{r['equal_round_trips']} RT, {eq[0]} / {eq[1]} B |"
        )
    print()
    for r in rows:
        print(
            f"N={r['n']:,}: filled by `log append --stdin` in {r['fill_s']} s, "
            f"sync index built in {r['index_s']} s, receiver store {r['store_mb']} MB"
        )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
