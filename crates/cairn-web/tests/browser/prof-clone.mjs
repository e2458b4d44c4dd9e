// Diagnostic (not a test): wiki-clone.mjs with the worker's CPU profile, summarized by self
// time per function. CAIRN, CAIRN_BENCH as there; PHASE=receive|catchup.
import path from 'node:path';
import { launch, until, call, serveBenchWiki } from './lib.mjs';

const www = path.resolve(process.argv[2]);
const pages = Number(process.argv[3] || 10000);
const edits = Number(process.argv[4] || 100000);
const cairn = path.resolve(process.env.CAIRN);
const bench = path.resolve(process.env.CAIRN_BENCH);
const { gen, base, tmp, close } = await serveBenchWiki(cairn, bench, www, pages, edits);
const b = await launch(path.join(tmp, 'profile'));
const page = b.page;
const ask = (op, f = {}) => call(page, op, f);
const bs = await b.browser.newBrowserCDPSession();
let nextId = 1;
const waiting = new Map();
let sid = null;
bs.on('Target.receivedMessageFromTarget', (e) => {
  const m = JSON.parse(e.message);
  if (m.id && waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); }
});
const wsend = (method, params = {}) => new Promise((r) => {
  const id = nextId++;
  waiting.set(id, r);
  bs.send('Target.sendMessageToTarget', { sessionId: sid, message: JSON.stringify({ id, method, params }) });
});
const phase = process.env.PHASE || 'receive';
// The app, as a user opens it: it connects to the server by itself.
const t0 = Date.now();
await page.goto(`${base}#/page/Page%205`);
let w;
await until('the worker', async () => {
  const { targetInfos } = await bs.send('Target.getTargets');
  return (w = targetInfos.find((t) => t.type === 'worker'));
}, 60000, 20);
({ sessionId: sid } = await bs.send('Target.attachToTarget', { targetId: w.targetId, flatten: false }));
await wsend('Profiler.enable');
await wsend('Profiler.setSamplingInterval', { interval: 200 });
if (phase === 'receive') await wsend('Profiler.start');
await page.waitForFunction(() => window.cairn);
await until('all', async () => (await ask('len')) >= gen.nodes, 1800000, 200);
const recv = (Date.now() - t0) / 1000;
if (phase === 'catchup') await wsend('Profiler.start');
const t1 = Date.now();
let kvS = 0;
if (phase === 'catchup') {
  // The kv view alone first (a kv read catches up only it), then the wiki view.
  await ask('kv_get', { key: 'page/Page 5' });
  kvS = (Date.now() - t1) / 1000;
  await ask('wiki_page', { title: 'Page 5' });
}
const cu = (Date.now() - t1) / 1000;
const { result } = await wsend('Profiler.stop');
const prof = result.profile;
if (process.env.PROF_OUT) (await import('node:fs')).writeFileSync(process.env.PROF_OUT, JSON.stringify(prof));
const self = new Map();
const dt = prof.timeDeltas;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
let total = 0;
prof.samples.forEach((id, i) => {
  const n = byId.get(id);
  const name = n.callFrame.functionName || `(${n.callFrame.url.split('/').pop()})`;
  self.set(name, (self.get(name) || 0) + (dt[i] || 0));
  total += dt[i] || 0;
});
console.log(JSON.stringify({ recv, catchup: cu, kv_catchup: kvS, total_ms: total / 1000 }));
for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log((v / 1000).toFixed(0).padStart(7), k.slice(0, 140));
await b.close();
await close();
