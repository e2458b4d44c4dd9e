// N nodes between two browser peers over WebRTC (scripts/bench-swarm.sh runs this): `cairn
// serve --http` is only the signalling hub (no browser opens /sync); page A appends N entries
// (append_many, 1,000 a batch), then A and B join one swarm. Measured in B's page: from its
// `swarm_join` until its log holds N (negotiation + handshake + sync), and from its WebRTC
// session starting to sync (handshake done) until then (the sync alone). Prints one JSON line.
//
//   node crates/cairn-web/tests/browser/bench-swarm.mjs WWW_DIR CAIRN_BINARY [N=10000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { openHarness, call, FLAGS, startServe, until } from './lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const [www, cairn] = process.argv.slice(2, 4).map((p) => path.resolve(p));
const n = Number(process.argv[4] || 10000);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-swarm-bench-'));
const data = path.join(tmp, 'server');
execFileSync(cairn, ['--data', data, 'init']);
const { child, lines } = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--web', www]);
const base = lines[1].trim().replace(/\/?$/, '/');
const hub = base.replace(/^http/, 'ws') + 'hub';
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: [...FLAGS, '--allow-loopback-in-peer-connection'],
});
try {
  const pages = [];
  for (let i = 0; i < 2; i++) {
    const ctx = await browser.newContext();
    await ctx.grantPermissions(['camera', 'microphone'], { origin: base.replace(/\/$/, '') });
    const page = await ctx.newPage();
    await openHarness(page, base + 'peer.html?swarm=');
    pages.push(page);
  }
  const [a, b] = pages;
  for (let done = 0; done < n; done += 1000) {
    const values = Array.from({ length: Math.min(1000, n - done) }, (_, i) => `bench node ${done + i} ${'x'.repeat(40)}`);
    await call(a, 'append_many', { values });
  }
  const have = await call(a, 'len');
  await a.evaluate((u) => window.swarm.join(u, 'bench'), hub);
  const r = await b.evaluate(async ([u, n]) => {
    const t0 = performance.now();
    let live = null;
    window.cairn.on('peers', (m) => { if (live === null && m.peer.state === 'syncing') live = performance.now(); });
    await window.swarm.join(u, 'bench');
    for (;;) {
      const len = (await window.cairn.call('len')).ok;
      if (len >= n) break;
      if (performance.now() - t0 > 120000) throw new Error(`only ${len} of ${n} after 120 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const t1 = performance.now();
    return { total_ms: Math.round(t1 - t0), sync_ms: live === null ? null : Math.round(t1 - live) };
  }, [hub, have]);
  await until('b reports the session', async () => (await call(b, 'peers')).some((p) => p.state === 'live'));
  const conn = (await call(b, 'peers')).find((p) => p.kind === 'attached' && p.nodes_received > 0);
  console.log(JSON.stringify({
    bench: 'swarm', nodes: have, over: 'webrtc', ...r,
    nodes_per_s: Math.round(have / (r.total_ms / 1000)), received_by_b: conn ? conn.nodes_received : null,
  }));
} finally {
  await browser.close();
  child.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}
