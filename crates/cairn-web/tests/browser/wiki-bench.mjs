// The wiki app's figures in headless Debian Chromium (run by scripts/bench-wiki-browser.sh):
// first load on a fresh profile (time until the first page's title is shown), then a wiki of
// PAGES pages written through the worker (wiki_save, durable each), then opening pages and
// searching as a user does (hash change / searchbox → content shown), and the same requests
// timed alone. Prints one JSON object.
//
//   node crates/cairn-web/tests/browser/wiki-bench.mjs WWW_DIR [PAGES=1000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch } from './lib.mjs';

const www = path.resolve(process.argv[2]);
const pages = Number(process.argv[3] || 1000);
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
const vocab = Array.from({ length: 2000 }, (_, i) => `w${(i * 7919) % 100003}x${i % 26}`);
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

// Open pages as a user: hash change → the page's text rendered.
const open = [];
for (let k = 0; k < 30; k++) {
  const i = rnd(pages);
  const ms = await page.evaluate(async (i) => {
    const t = performance.now();
    location.hash = `#/page/Page%20${i}`;
    for (;;) {
      const c = document.querySelector('article .content');
      if (c && c.textContent.startsWith(`marker${i}end`)) return performance.now() - t;
      await new Promise((r) => requestAnimationFrame(r));
    }
  }, i);
  open.push(ms);
}
// Search as a user: the searchbox, Enter → results shown.
const search = [];
for (let k = 0; k < 20; k++) {
  const q = k % 2 ? vocab[rnd(vocab.length)] : `${vocab[rnd(vocab.length)]} ${vocab[rnd(vocab.length)].slice(0, 3)}`;
  await page.evaluate(() => { location.hash = '#/pages'; });
  await page.waitForSelector('ul.pages');
  const box = page.getByRole('searchbox', { name: 'Search' });
  await box.fill(q);
  const start = await page.evaluate(() => performance.now());
  await box.press('Enter');
  await page.waitForFunction(() => /page\(s\) found/.test(document.querySelector('main p.meta')?.textContent || ''));
  search.push(await page.evaluate(() => performance.now()) - start);
}
// The worker's requests alone (postMessage round trip included).
const ops = await page.evaluate(async ([n, vocab]) => {
  const time = async (op, f) => { const t = performance.now(); const a = await window.cairn.call(op, f); if (a.error) throw new Error(a.error.message); return performance.now() - t; };
  const pageMs = [], searchMs = [], saveMs = [];
  for (let k = 0; k < 50; k++) pageMs.push(await time('wiki_page', { title: `Page ${(k * 37) % n}` }));
  for (let k = 0; k < 50; k++) searchMs.push(await time('wiki_search', { query: vocab[(k * 53) % vocab.length], limit: 20 }));
  for (let k = 0; k < 20; k++) saveMs.push(await time('wiki_save', { title: `Page ${(k * 11) % n}`, text: `marker edit ${k}`, time: Date.now() }));
  return { pageMs, searchMs, saveMs };
}, [pages, vocab]);

console.log(JSON.stringify({
  pages,
  first_page_shown_ms: round(firstPageMs),
  write_pages_s: round(writeS),
  open_page_ui_ms: { median: round(median(open)), p90: round(p90(open)) },
  search_ui_ms: { median: round(median(search)), p90: round(p90(search)) },
  wiki_page_op_ms: { median: round(median(ops.pageMs)), p90: round(p90(ops.pageMs)) },
  wiki_search_op_ms: { median: round(median(ops.searchMs)), p90: round(p90(ops.searchMs)) },
  wiki_save_op_ms: { median: round(median(ops.saveMs)), p90: round(p90(ops.saveMs)) },
}));
await b.close();
server.close();
fs.rmSync(profile, { recursive: true, force: true });
