// A new browser receives a large wiki from `cairn serve`, as a user gets it: the wiki is
// written natively into a server store (`cairn-bench wiki`, the nodes the browser's saves
// make), `cairn serve --http … --web WWW` serves it with the app, and a fresh browser profile
// opens a page of it. Timed: until the browser holds every node (the session's first sync
// complete: every node durable and checked, as the worker records it), until
// the opened page shows its text (the wiki views caught up), and the session's state; then, in
// that browser, opening pages and searching through the UI (as wiki-bench.mjs does). Prints
// one JSON object.
//
//   CAIRN=target/release/cairn CAIRN_BENCH=target/release/cairn-bench \
//     node crates/cairn-web/tests/browser/wiki-clone.mjs WWW_DIR [PAGES=10000] [EDITS=100000]
// RECEIVE_ONLY=1 stops after the first figure.
import path from 'node:path';
import { launch, until, timeOpenPages, timeSearches, benchVocab, call, serveBenchWiki } from './lib.mjs';

const www = path.resolve(process.argv[2]);
const pages = Number(process.argv[3] || 10000);
const edits = Math.max(pages, Number(process.argv[4] || 100000));
const cairn = path.resolve(process.env.CAIRN || 'target/release/cairn');
const bench = path.resolve(process.env.CAIRN_BENCH || 'target/release/cairn-bench');
const { gen, base, tmp, close } = await serveBenchWiki(cairn, bench, www, pages, edits);
const round = (x) => Math.round(x * 10) / 10;
const b = await launch(path.join(tmp, 'profile'));
const page = b.page;
const ask = (op, f = {}) => call(page, op, f);
const i = Math.floor(pages / 2);
// Navigation, on the clock the worker's `live_since` uses too (ms since the epoch).
const t0 = Date.now();
await page.goto(`${base}#/page/Page%20${i}`);
await page.waitForFunction(() => window.cairn);
let peers = [];
const trace = [];
await until('the new browser holds the wiki', async () => {
  peers = await ask('peers');
  const n = await ask('len');
  trace.push(`${((Date.now() - t0) / 1000).toFixed(1)}:${n}`);
  return n >= gen.nodes;
}, 1800000, 100);
if (process.env.TRACE) console.log(trace.join(' '));
const heldS = (Date.now() - t0) / 1000;
// When the session's first sync completed, as the worker recorded it: every node durable and
// checked (SYNCED both ways). The first poll that sees them all can come later: the app's
// screen reloads then, and the worker answers between batches of its view catch-up.
await until('the first sync complete', async () => (peers = await ask('peers')).some((p) => p.live_since), 1800000, 100);
const receivedS = (Math.min(...peers.filter((p) => p.live_since).map((p) => p.live_since)) - t0) / 1000;
if (process.env.RECEIVE_ONLY) {
  // Only the first figure (for comparing changes to the receive path quickly).
  console.log(JSON.stringify({ received_all_s: round(receivedS), all_seen_by_poll_s: round(heldS) }));
  await b.close();
  await close();
  process.exit(0);
}
await page.waitForFunction((i) => document.querySelector('article .content')?.textContent.startsWith(`marker${i}end`), i, { timeout: 1800000 });
const shownS = (Date.now() - t0) / 1000;
let seed = 3;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const open = await timeOpenPages(page, pages, 30, rnd);
const search = await timeSearches(page, benchVocab(), 20, rnd);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const p90 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length * 0.9)]; };
console.log(JSON.stringify({
  pages,
  edits,
  nodes: gen.nodes,
  server_write_s: gen.write_s,
  received_all_s: round(receivedS),
  all_seen_by_poll_s: round(heldS),
  page_shown_s: round(shownS),
  open_page_ui_ms: { median: round(median(open)), p90: round(p90(open)) },
  search_ui_ms: { median: round(median(search)), p90: round(p90(search)) },
  sessions_when_all_held: peers.map((p) => ({ state: p.state, last_error: p.last_error })),
}));
await b.close();
await close();
