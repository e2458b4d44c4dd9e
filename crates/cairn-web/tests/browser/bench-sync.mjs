// The browser-to-browser latency through `cairn serve` (scripts/bench-sync.sh runs this): two
// browser contexts, each a peer connected live to one `cairn serve` over WebSocket on
// loopback. N times, one after the other: page A appends an entry holding its wall-clock time;
// page B, woken by its worker's `peers` event, reads the new entries and notes when each
// became visible to it. The latency is that difference (both pages read the same system
// clock, `performance.timeOrigin + performance.now()`). Prints one JSON line.
//
//   node crates/cairn-web/tests/browser/bench-sync.mjs WWW_DIR CAIRN_BINARY [N=200]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { serve, openHarness, call, sleep, FLAGS, startServe } from './lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const [www, cairn] = process.argv.slice(2, 4).map((p) => path.resolve(p));
const n = Number(process.argv[4] || 200);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sync-bench-'));
const data = path.join(tmp, 'server');
execFileSync(cairn, ['--data', data, 'init']);
const { child, lines: [, wsAddr] } = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--ws-listen', '127.0.0.1:0']);
const { server: web, url } = await serve({ '/': www });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
try {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    const page = await (await browser.newContext()).newPage();
    await openHarness(page, url + 'peer.html');
    const id = (await call(page, 'connect', { url: `ws://${wsAddr}` })).id;
    for (;;) {
      const c = (await call(page, 'peers')).find((p) => p.id === id);
      if (c.state === 'live') break;
      await sleep(20);
    }
    pages.push(page);
  }
  const [a, b] = pages;
  // B: on every connection event, read what is new and note when each bench entry arrived.
  await b.evaluate(async () => {
    const now = () => performance.timeOrigin + performance.now();
    window.seen = [];
    let since = (await window.cairn.call('len')).ok;
    let busy = false, again = false;
    const look = async () => {
      if (busy) { again = true; return; }
      busy = true;
      do {
        again = false;
        const r = await window.cairn.call('changes', { since, limit: 1000 });
        const t = now();
        for (const e of r.ok) {
          since = e.change;
          const m = /^bench (\d+) ([\d.]+)$/.exec(e.value || '');
          if (m) window.seen.push({ i: Number(m[1]), ms: t - Number(m[2]) });
        }
      } while (again);
      busy = false;
    };
    window.cairn.on('peers', look);
  });
  for (let i = 0; i < n; i++) {
    await a.evaluate((i) => window.cairn.call('append', { value: `bench ${i} ${performance.timeOrigin + performance.now()}` }), i);
    const end = Date.now() + 10000;
    while ((await b.evaluate(() => window.seen.length)) <= i) {
      if (Date.now() > end) throw new Error(`write ${i} not visible in b within 10 s`);
      await sleep(2);
    }
  }
  const ms = (await b.evaluate(() => window.seen.map((s) => s.ms))).sort((x, y) => x - y);
  const q = (p) => ms[Math.min(ms.length - 1, Math.ceil(p * ms.length) - 1)];
  console.log(JSON.stringify({
    writes: ms.length, median_ms: +q(0.5).toFixed(1), p99_ms: +q(0.99).toFixed(1),
    min_ms: +ms[0].toFixed(1), max_ms: +ms[ms.length - 1].toFixed(1),
  }));
} finally {
  await browser.close();
  web.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  fs.rmSync(tmp, { recursive: true, force: true });
}
