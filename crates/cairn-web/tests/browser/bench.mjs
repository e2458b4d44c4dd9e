// Browser figures (scripts/bench-browser.sh runs this): first-load time of the harness on a
// fresh profile, and the ingest rate of verified nodes made natively (check + durable insert,
// in batches) inside the worker on OPFS. Prints one JSON line.
//
//   node crates/cairn-web/tests/browser/bench.mjs WWW_DIR FIXTURES_DIR BATCH
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, launch, openHarness } from './lib.mjs';

const [www, fixtures] = process.argv.slice(2, 4).map((p) => path.resolve(p));
const batch = Number(process.argv[4] || 1000);
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-web-bench-'));
const { server, url: root } = await serve({ '/fixtures/': fixtures, '/': www });
// The harness page of the served directory (scripts/build-web.sh); the wiki app is /index.html.
const url = root + 'peer.html';
const b = await launch(profile);
try {
  await openHarness(b.page, url);
  const firstLoad = await b.page.evaluate(() => window.readyAt);
  await b.page.reload();
  await openHarness(b.page, url);
  const reload = await b.page.evaluate(() => window.readyAt);
  const r = await b.page.evaluate(async (batch) => {
    const bytes = new Uint8Array(await (await fetch('/fixtures/nodes.bin')).arrayBuffer());
    // Split the frames (u32 LE length + node) into batches of `batch` nodes.
    const cuts = [0];
    const view = new DataView(bytes.buffer);
    let at = 0, n = 0;
    while (at < bytes.length) {
      at += 4 + view.getUint32(at, true);
      if (++n % batch === 0) cuts.push(at);
    }
    if (cuts[cuts.length - 1] !== at) cuts.push(at);
    const t = performance.now();
    let last;
    for (let i = 1; i < cuts.length; i++) {
      last = await window.cairn.call('insert', {}, bytes.slice(cuts[i - 1], cuts[i]));
      if (last.error) throw new Error(last.error.message);
    }
    return { nodes: n, ms: performance.now() - t, len: last.ok.len };
  }, batch);
  console.log(JSON.stringify({
    first_load_ms: Math.round(firstLoad), reload_ms: Math.round(reload),
    browser_nodes: r.nodes, browser_len: r.len, browser_nodes_per_s: Math.round(r.nodes / (r.ms / 1000)),
  }));
} finally {
  await b.close();
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
