// The wiki app's figures in headless Debian Chromium (run by scripts/bench-wiki-browser.sh):
// first load on a fresh profile (time until the first page's title is shown), then a wiki of
// PAGES pages written through the worker (wiki_save, durable each), then EDITS - PAGES more
// edits of random pages, then opening pages and searching as a user does (hash change /
// searchbox → content shown), and the same requests timed alone. With CAIRN=path/to/cairn,
// then: this browser pushes its wiki to a `cairn serve` on 127.0.0.1, and a new browser
// context (its own store) connects and is timed until it holds the whole wiki and shows a
// page. Prints one JSON object.
//
//   [CAIRN=target/release/cairn] node crates/cairn-web/tests/browser/wiki-bench.mjs WWW_DIR [PAGES=1000] [EDITS=PAGES]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { serve, launch, startServe, until, timeOpenPages, timeSearches, benchVocab } from './lib.mjs';

const www = path.resolve(process.argv[2]);
const pages = Number(process.argv[3] || 1000);
const edits = Math.max(pages, Number(process.argv[4] || pages));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-wiki-bench-'));
const { server, url } = await serve({ '/': www });
const b = await launch(profile);
const page = b.page;
await page.setViewportSize({ width: 1100, height: 800 });

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const p90 = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length * 0.9)]; };
const round = (x) => Math.round(x * 10) / 10;

// First load: navigation start → the page's title shown by the app (the worker opened its
// store on OPFS, the app asked it for the page).
await page.goto(url + '#/page/Home');
await page.waitForSelector('main h1');
const firstPageMs = await page.evaluate(() => performance.now());

// A wiki of `pages` pages: ~60 words each from a 2,000-word vocabulary, 3 links each.
const vocab = benchVocab();
let seed = 1;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const t0 = Date.now();
await page.evaluate(async ([n, vocab]) => {
  let s = 7;
  const r = (k) => { s = (s * 1103515245 + 12345) % 2147483648; return s % k; };
  for (let i = 0; i < n; i++) {
    const words = Array.from({ length: 60 }, () => vocab[r(vocab.length)]).join(' ');
    const links = [0, 1, 2].map(() => `[[Page ${r(n)}]]`).join(' ');
    const text = `marker${i}end ${words}\n\nSee ${links}.`;
    const a = await window.cairn.call('wiki_save', { title: `Page ${i}`, text, summary: 'bench', time: Date.now() });
    if (a.error) throw new Error(JSON.stringify(a.error));
  }
}, [pages, vocab]);
const writeS = (Date.now() - t0) / 1000;
// More edits of random pages (each links the page's current version: its history grows).
const t1 = Date.now();
await page.evaluate(async ([n, extra, vocab]) => {
  let s = 11;
  const r = (k) => { s = (s * 1103515245 + 12345) % 2147483648; return s % k; };
  for (let e = 0; e < extra; e++) {
    const i = r(n);
    const words = Array.from({ length: 60 }, () => vocab[r(vocab.length)]).join(' ');
    const text = `marker${i}end edit ${e} ${words}\n\nSee [[Page ${r(n)}]].`;
    const a = await window.cairn.call('wiki_save', { title: `Page ${i}`, text, summary: `edit ${e}`, time: Date.now() });
    if (a.error) throw new Error(JSON.stringify(a.error));
  }
}, [pages, edits - pages, vocab]);
const editS = (Date.now() - t1) / 1000;

// Open pages and search as a user does.
const open = await timeOpenPages(page, pages, 30, rnd);
const search = await timeSearches(page, vocab, 20, rnd);
// The worker's requests alone (postMessage round trip included).
const ops = await page.evaluate(async ([n, vocab]) => {
  const time = async (op, f) => { const t = performance.now(); const a = await window.cairn.call(op, f); if (a.error) throw new Error(a.error.message); return performance.now() - t; };
  const pageMs = [], searchMs = [], saveMs = [];
  for (let k = 0; k < 50; k++) pageMs.push(await time('wiki_page', { title: `Page ${(k * 37) % n}` }));
  for (let k = 0; k < 50; k++) searchMs.push(await time('wiki_search', { query: vocab[(k * 53) % vocab.length], limit: 20 }));
  for (let k = 0; k < 20; k++) saveMs.push(await time('wiki_save', { title: `Page ${(k * 11) % n}`, text: `marker edit ${k}`, time: Date.now() }));
  return { pageMs, searchMs, saveMs };
}, [pages, vocab]);

// A new browser receives the whole wiki from a server (CAIRN set).
let clone = null;
if (process.env.CAIRN) {
  const cairn = path.resolve(process.env.CAIRN);
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-wiki-bench-server-'));
  execFileSync(cairn, ['--data', data, 'init'], { stdio: 'ignore' });
  const srv = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--ws-listen', '127.0.0.1:0']);
  const ws = `ws://${srv.lines[1]}`;
  const ask = (p, op, f = {}) => p.evaluate(([o, x]) => window.cairn.call(o, x), [op, f]).then((r) => {
    if (r.error) throw new Error(`${op}: ${r.error.message}`);
    return r.ok;
  });
  const total = await ask(page, 'len');
  const tPush = Date.now();
  const a = await ask(page, 'connect', { url: ws });
  // `live`: the session's first sync is done, so the server holds everything.
  await until('the server has the wiki', async () => (await ask(page, 'peers')).find((c) => c.id === a.id).state === 'live', 1800000, 200);
  const pushS = (Date.now() - tPush) / 1000;
  const ctx = await b.browser.newContext();
  const fresh = await ctx.newPage();
  await fresh.goto(url + '#/pages');
  await fresh.waitForSelector('main h1');
  const tClone = Date.now();
  await ask(fresh, 'connect', { url: ws });
  await until('the new browser holds the wiki', async () => (await ask(fresh, 'len')) >= total, 1800000, 100);
  const cloneS = (Date.now() - tClone) / 1000;
  // Then a page opened in it (its wiki view catches up with every received edit first).
  const i = rnd(pages);
  const tOpen = Date.now();
  await fresh.evaluate((i) => { location.hash = `#/page/Page%20${i}`; }, i);
  await fresh.waitForFunction((i) => document.querySelector('article .content')?.textContent.startsWith(`marker${i}end`), i, { timeout: 1800000 });
  clone = { nodes: total, push_to_server_s: round(pushS), new_browser_receives_s: round(cloneS), then_first_page_shown_s: round((Date.now() - tOpen) / 1000) };
  await ctx.close();
  srv.child.kill('SIGTERM');
  await srv.exited;
  fs.rmSync(data, { recursive: true, force: true });
}

console.log(JSON.stringify({
  pages,
  edits,
  write_edits_s: round(editS),
  first_page_shown_ms: round(firstPageMs),
  write_pages_s: round(writeS),
  open_page_ui_ms: { median: round(median(open)), p90: round(p90(open)) },
  search_ui_ms: { median: round(median(search)), p90: round(p90(search)) },
  wiki_page_op_ms: { median: round(median(ops.pageMs)), p90: round(p90(ops.pageMs)) },
  wiki_search_op_ms: { median: round(median(ops.searchMs)), p90: round(p90(ops.searchMs)) },
  wiki_save_op_ms: { median: round(median(ops.saveMs)), p90: round(p90(ops.saveMs)) },
  clone,
}));
await b.close();
server.close();
fs.rmSync(profile, { recursive: true, force: true });
