// The wiki's first load as a user gets it from `cairn serve`: a fresh browser profile opens
// the app, and the bytes of every HTTP response it fetched until the first page's title shows
// (page and worker: HTML, JS, wasm; headers included) are summed as they came over the wire,
// by content coding. `cairn serve` compresses the web directory's files in the background at
// start (src/compress.rs in cairn-cli); this waits until the peer's wasm has its brotli copy.
// Prints one JSON object.
//
//   node crates/cairn-web/tests/browser/first-load.mjs WWW_DIR CAIRN
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { launch, startServe, untilCompressed } from './lib.mjs';

const www = path.resolve(process.argv[2]);
const cairn = path.resolve(process.argv[3] || process.env.CAIRN || 'target/release/cairn');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-first-load-'));
const data = path.join(tmp, 'server');
execFileSync(cairn, ['--data', data, 'init'], { stdio: 'ignore' });
const t0 = Date.now();
const server = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--web', www]);
const base = server.lines[1].trim().split(/\s+/).find((w) => w.startsWith('http://'));
await untilCompressed(base);
const compressS = (Date.now() - t0) / 1000;

const b = await launch(path.join(tmp, 'profile'));
const fetched = [];
b.page.context().on('requestfinished', async (r) => {
  const s = await r.sizes();
  const resp = await r.response();
  const h = resp ? await resp.allHeaders() : {};
  // The body as sent (Content-Length: its encoded length; Chromium reports no body size for
  // worker scripts) and the head.
  const body = Number(h['content-length'] ?? s.responseBodySize);
  fetched.push({ url: r.url().replace(base, '/'), bytes: body + s.responseHeadersSize, coding: h['content-encoding'] || 'none' });
});
const tNav = Date.now();
await b.page.goto(base + '#/page/Home');
await b.page.waitForSelector('main h1');
const shownMs = Date.now() - tNav;
await new Promise((r) => setTimeout(r, 300)); // the last sizes() answers
const total = fetched.reduce((a, f) => a + f.bytes, 0);
const byCoding = {};
for (const f of fetched) byCoding[f.coding] = (byCoding[f.coding] || 0) + f.bytes;
const raw = (f) => fs.statSync(path.join(www, f)).size;
console.log(JSON.stringify({
  first_load_bytes: total,
  by_coding: byCoding,
  files: fetched.map((f) => `${f.url} ${f.bytes} ${f.coding}`),
  raw_wasm: { peer: raw('pkg/cairn_web_bg.wasm'), app: raw('wiki/cairn_wiki_app_bg.wasm') },
  first_page_shown_ms: shownMs,
  server_compressed_all_s: Math.round(compressS * 10) / 10,
}, null, 1));
await b.close();
server.child.kill('SIGTERM');
await server.exited;
fs.rmSync(tmp, { recursive: true, force: true });
