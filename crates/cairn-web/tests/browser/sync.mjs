// Live sync between browser peers and `cairn serve` over WebSocket (Noise XX + cairn identities,
// cairn-net on both sides), in headless Debian Chromium driven by playwright-core. Run by
// scripts/test-browser.sh after the wasm and release builds; prints one line per test and a
// closing "N passed, N failed" line; exits non-zero on any failure.
//
//   node crates/cairn-web/tests/browser/sync.mjs WWW_DIR OUT_DIR CAIRN_BINARY
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { serve, launch, openHarness, call, sleep, FLAGS, runner, until, startServe } from './lib.mjs';
import { garbage, tamperingProxy } from './wsfake.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const [www, out, cairn] = process.argv.slice(2).map((p) => path.resolve(p));
fs.mkdirSync(out, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-sync-test-'));
const serverData = path.join(tmp, 'server');
const run = (data, ...args) => execFileSync(cairn, ['--data', data, ...args], { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] }).trim();

// `cairn serve` on 127.0.0.1 (TCP and WebSocket); ports 0 the first time, then the same ones.
let server = null;
async function startServer(tcp = '127.0.0.1:0', ws = '127.0.0.1:0') {
  const s = await startServe(cairn, serverData, ['--listen', tcp, '--ws-listen', ws]);
  server = { ...s, tcp: s.lines[0], ws: s.lines[1], url: `ws://${s.lines[1]}` };
  return server;
}

const { test, done } = runner('sync');
const has = (page, key) => call(page, 'get', { key }).then((n) => n !== null);
const peer = async (page, id) => (await call(page, 'peers')).find((p) => p.id === id);

const serverKey = run(serverData, 'init');
const seeded = run(serverData, 'log', 'append', 'held by the server before the browsers came');
await startServer();
const { server: web, url } = await serve({ '/': www });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
const pages = [];
for (let i = 0; i < 2; i++) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`     [page ${i}] ${m.text()}`); });
  await openHarness(page, url + 'peer.html');
  pages.push(page);
}
const [a, b] = pages;
const conn = {};

await test('both browsers connect to cairn serve, prove identities and get the node it holds', async () => {
  for (const [name, p] of [['a', a], ['b', b]]) {
    conn[name] = (await call(p, 'connect', { url: server.url })).id;
  }
  for (const [name, p] of [['a', a], ['b', b]]) {
    const live = await until(`${name} live`, async () => {
      const c = await peer(p, conn[name]);
      return c.state === 'live' && c;
    });
    assert.equal(live.remote, serverKey);
    assert.equal(live.kind, 'websocket');
    assert.ok(await has(p, seeded), `${name} lacks the server's node`);
  }
  // Requests are answered while the sessions run.
  assert.equal(typeof (await call(a, 'len')), 'number');
});

await test('a write in one browser appears in the other through the server', async () => {
  const t = Date.now();
  const w = await call(a, 'append', { value: 'written in browser a' });
  await until('b has a\'s write', () => has(b, w.key), 10000);
  console.log(`     visible in b after ${Date.now() - t} ms`);
  const w2 = await call(b, 'kv_put', { key: 'note', value: { from: 'b' } });
  await until('a has b\'s kv write', async () => Object.keys(await call(a, 'kv_get', { key: 'note' })).includes(w2), 10000);
  const pa = await peer(a, conn.a);
  assert.ok(pa.nodes_sent >= 1 && pa.nodes_received >= 2, JSON.stringify(pa));
});

await test('a node a native peer pushes to the server reaches both browsers live', async () => {
  const native = path.join(tmp, 'native');
  run(native, 'init');
  const key = run(native, 'log', 'append', 'from a native peer');
  run(native, 'sync', '--mode', 'push', '--connect', server.url);
  await until('a has it', () => has(a, key), 10000);
  await until('b has it', () => has(b, key), 10000);
});

await a.evaluate(() => window.refreshView());
await b.evaluate(() => window.refreshView());
await sleep(300);
await a.screenshot({ path: path.join(out, 'peer-a.png'), fullPage: true });
await b.screenshot({ path: path.join(out, 'peer-b.png'), fullPage: true });

await test('cairn serve killed and restarted: the browsers reconnect and converge', async () => {
  const { tcp, ws } = server;
  server.child.kill('SIGKILL');
  await server.exited;
  for (const [name, p] of [['a', a], ['b', b]]) {
    const c = await until(`${name} sees the drop`, async () => {
      const c = await peer(p, conn[name]);
      return c.state !== 'live' && c.last_error && c;
    }, 15000);
    console.log(`     ${name} after the kill: ${c.state}, ${c.last_error}`);
  }
  // Written while the server is down: must travel once it is back.
  const offline = await call(a, 'append', { value: 'written in a while the server was down' });
  await sleep(300);
  await a.screenshot({ path: path.join(out, 'peer-a-server-down.png'), fullPage: true });
  await startServer(tcp, ws);
  await until('b has a\'s offline write', () => has(b, offline.key), 45000);
  for (const [name, p] of [['a', a], ['b', b]]) {
    const c = await until(`${name} live again`, async () => {
      const c = await peer(p, conn[name]);
      return c.state === 'live' && c;
    }, 10000);
    assert.ok(c.sessions >= 2, JSON.stringify(c));
  }
  // And the server kept it (its own store, read after a clean stop below).
  const back = await call(b, 'append', { value: 'after the restart' });
  await until('a has b\'s write after the restart', () => has(a, back.key), 10000);
}, 120000);

async function hostile(name, fakeUrl, expect) {
  const before = await call(a, 'len');
  const heads = await call(a, 'heads');
  const id = (await call(a, 'connect', { url: fakeUrl })).id;
  const c = await until(`${name}: an error in peers`, async () => {
    const c = await peer(a, id);
    return c.last_error && c;
  }, 20000);
  console.log(`     ${name}: ${c.state}: ${c.last_error}`);
  assert.match(c.last_error, expect);
  assert.notEqual(c.state, 'live');
  await call(a, 'disconnect', { conn: id });
  await until(`${name}: closed`, async () => (await peer(a, id)).state === 'closed', 40000);
  // The store is intact and answers; the good connection is still live.
  assert.equal(await call(a, 'len'), before);
  assert.deepEqual(await call(a, 'heads'), heads);
  const w = await call(a, 'append', { value: `after ${name}` });
  await until(`b still gets a's writes after ${name}`, () => has(b, w.key), 10000);
  assert.equal((await peer(a, conn.a)).state, 'live');
}

await test('a server that speaks garbage instead of the handshake is dropped with an error', async () => {
  const g = await garbage();
  try {
    await hostile('garbage handshake', g.url, /handshake/);
    assert.ok(g.connections() >= 1);
  } finally { g.close(); }
});

await test('a server that speaks garbage after a good handshake is dropped with an error', async () => {
  // The server's XX message and identity message pass; every later message has a bit flipped.
  const proxy = await tamperingProxy(server.tcp, 2);
  try {
    await hostile('tampered after the handshake', proxy.url, /tampered/);
    assert.ok(proxy.tampered() >= 1);
  } finally { proxy.close(); }
  await a.evaluate(() => window.refreshView());
  await sleep(300);
  await a.screenshot({ path: path.join(out, 'peer-a-hostile.png'), fullPage: true });
});

await test('connect refuses what is not a ws:// URL; disconnect of an unknown id is an error', async () => {
  const r1 = await a.evaluate(() => window.cairn.call('connect', { url: 'http://127.0.0.1:1/' }));
  assert.equal(r1.error.kind, 'bad_input');
  const r2 = await a.evaluate(() => window.cairn.call('disconnect', { conn: 9999 }));
  assert.equal(r2.error.kind, 'bad_input');
  const r3 = await a.evaluate(() => window.cairn.call('attach', {}));
  assert.equal(r3.error.kind, 'bad_request');
});

await test('a browser killed (SIGKILL) mid-sync keeps what it stored and completes the sync after a restart', async () => {
  // Browser a writes 50,000 nodes; they reach the server (and b). The worker inserts what it
  // receives in batches of up to 32,768 nodes (net.rs): c is seen part way after the first.
  for (let i = 0; i < 50000; i += 5000) {
    await call(a, 'append_many', { values: Array.from({ length: 5000 }, (_, j) => `bulk ${i + j}`) });
  }
  const total = await call(a, 'len');
  await until('b has them all, so the server has', async () => (await call(b, 'len')) >= total, 120000, 100);
  const heads = (await call(a, 'heads')).sort();
  // A new browser with its own profile dials the server and is killed while it receives.
  const profile = fs.mkdtempSync(path.join(tmp, 'profile-'));
  let c = await launch(profile);
  try {
    await openHarness(c.page, url + 'peer.html');
    // Killed on the worker's first progress event with nodes stored (a poll of `len` waits
    // behind the socket's queued messages and may come too late).
    await c.page.evaluate(() => {
      window.partway = null;
      window.cairn.on('peers', (m) => {
        if (window.partway === null && m.peer.nodes_received > 100) {
          window.partway = m.peer.live_since ? 'done' : m.peer.nodes_received;
        }
      });
    });
    await call(c.page, 'connect', { url: server.url });
    const stored = await (await c.page.waitForFunction(() => window.partway, null, { timeout: 60000, polling: 5 })).jsonValue();
    await c.kill();
    assert.notEqual(stored, 'done', 'the sync finished before the kill');
    // Restarted on the same profile: the store opens with at least what it had stored.
    c = await launch(profile);
    const { ready } = await openHarness(c.page, url + 'peer.html');
    assert.ok(ready.len >= stored, `len ${ready.len} after the restart < ${stored} seen before the kill`);
    console.log(`     killed with ${stored} of ${total} nodes stored; ${ready.len} after the restart`);
    await call(c.page, 'connect', { url: server.url });
    await until('c completes the sync', async () => (await call(c.page, 'len')) === total, 120000, 100);
    assert.deepEqual((await call(c.page, 'heads')).sort(), heads);
  } finally {
    await c.kill();
  }
}, 240000);

await test('the server stops cleanly and its store holds every browser write', async () => {
  const want = [];
  for (const e of await call(a, 'changes', { since: 0, limit: 1000 })) want.push(e.key);
  server.child.kill('SIGTERM');
  assert.equal(await server.exited, 0, server.stderr());
  const stored = run(serverData, 'log', 'changes').split('\n').filter(Boolean).map((l) => JSON.parse(l).key);
  for (const k of want) assert.ok(stored.includes(k), `the server lacks ${k}`);
});

await browser.close();
web.close();
if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(done());
