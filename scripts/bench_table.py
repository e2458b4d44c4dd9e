"""Joins one cairn-bench run and one JS-anchor run into a markdown table with ratios."""
import json
import sys

n, cairn_txt, js_json = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
c = {}
notes = {}
for line in open(cairn_txt):
    if line.startswith("JSON "):
        c = json.loads(line[5:])
    elif line.startswith("| ") and not line.startswith("| figure"):
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        notes[cells[0]] = cells[2] if len(cells) > 2 else ""

js = {}
if js_json:
    for r in json.load(open(js_json))["results"]:
        js[r["name"]] = r["phases"]

def jsv(job, phase, key):
    try:
        p = js[job][phase]
        return p[key], p.get("partial", False), p.get("peakRssMB")
    except KeyError:
        return None, False, None

def fmt(v, unit=""):
    if v is None:
        return "–"
    s = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    return s + (" " + unit if unit else "")

rows = []
def row(figure, ours, unit, theirs=None, partial=False, higher_better=True, js_label=""):
    ratio = "–"
    if ours is not None and theirs:
        r = ours / theirs if higher_better else theirs / ours
        ratio = f"{r:,.1f}×"
    t = fmt(theirs, unit) + (" (partial)" if partial else "")
    if js_label and theirs is not None:
        t += f" {js_label}"
    rows.append((figure, fmt(ours, unit), t, ratio))

b, bp, brss = jsv("batch-level", "batch", "nodesPerSec")
row("batch append, 1000 per batch (cairn: signed + durable; JS: unsigned, not synced)",
    c.get("batch_append_per_s"), "nodes/s", b, bp)
a, ap, arss = jsv("chain-level-signed", "append", "nodesPerSec")
row("single signed appends, 100 concurrent callers (cairn: durable; JS: one at a time, not synced)",
    c.get("concurrent_append_per_s"), "nodes/s", a, ap)
row("single signed appends, 100 concurrent async callers (cairn: durable, add_async on a 2-thread runtime)",
    c.get("async_append_per_s"), "nodes/s", a, ap)
row("single signed append, one caller (cairn: durable, log.append; JS: log.add, not synced)",
    c.get("sequential_append_per_s"), "nodes/s", a, ap)
row("get of a random node", c.get("get_mean_us"), "µs")
row("heads", c.get("heads_ms"), "ms")
row("read the whole changes feed", c.get("feed_per_s"), "nodes/s")
row("reopen the store", c.get("open_ms"), "ms")
row("disk per node after batch append", c.get("disk_bytes_per_node"), "B")
row("peak RSS during batch append", c.get("batch_append_per_s_peak_mb"), "MB", brss, higher_better=False)
row("peak RSS during single appends", c.get("concurrent_append_per_s_peak_mb"), "MB", arss, higher_better=False)

print(f"### Log store, N = {int(n):,}\n")
print("| figure | cairn | JS (hyperlog 4.12.1, LevelDB) | cairn vs JS |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print("\ncairn notes:\n")
for k, v in notes.items():
    print(f"- {k}: {v}")
