// The WebRTC swarm in a real browser: `cairn serve --http` (its /hub only: no browser opens
// /sync, so every node travels over WebRTC data channels) and three browser contexts joining
// one swarm through the peer page (www/swarm.js on the page, src/swarm.rs in the worker).
// Checks: a write in one reaches the others; one leaves, writes, comes back and converges; a
// channel proving another key than the signalling named is dropped; garbage on a data
// channel drops that peer and the store stays intact; max_peers is respected; two tabs of one
// profile share one swarm membership across a takeover; the peer page
// and the wiki, served by `cairn serve`, join their swarms by themselves. Prints one
// line per test and a closing "swarm: N passed, N failed".
//
//   node crates/cairn-web/tests/browser/swarm.mjs WWW_DIR OUT_DIR CAIRN_BINARY
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { FLAGS, openHarness, call, sleep, runner, until as poll, startServe } from './lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const [www, out, cairn] = process.argv.slice(2).map((p) => path.resolve(p));
fs.mkdirSync(out, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-swarm-test-'));
const data = path.join(tmp, 'server');
execFileSync(cairn, ['--data', data, 'init'], { stdio: 'ignore' });
const served = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--web', www]);
const base = served.lines[1].trim().replace(/\/?$/, '/');
const hub = base.replace(/^http/, 'ws') + 'hub';
const SWARM = 'swarm-test';

const pages = [];
const { test, done } = runner('swarm', {
  onFail: (n) => Promise.all(pages.map((p, i) => p.screenshot({ path: path.join(out, `swarm-fail-${n}-${i}.png`) }))),
});
const until = (what, check, ms = 20000) => poll(what, check, ms, 100);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: [...FLAGS, '--allow-loopback-in-peer-connection'],
});
const keys = [];
const origin = base.replace(/\/$/, '');
for (let i = 0; i < 3; i++) {
  const ctx = await browser.newContext();
  await ctx.grantPermissions(['camera', 'microphone'], { origin });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`     [page ${i}] ${m.text()}`); });
  // ?swarm= : the page joins no swarm by itself; the tests join with their own options.
  const { ready } = await openHarness(page, base + 'peer.html?swarm=');
  keys.push(ready.public);
  pages.push(page);
}
const [a, b, c] = pages;

const join = (page, maxPeers) => page.evaluate(([u, s, m]) => window.swarm.join(u, s, { maxPeers: m }), [hub, SWARM, maxPeers])
  .then((r) => { if (r.error) throw new Error(r.error.message); return r.ok; });
const state = (page) => call(page, 'swarm');
const conns = (page) => call(page, 'peers');
const liveAttached = async (page) => (await conns(page)).filter((p) => p.kind === 'attached' && p.state === 'live');
const values = async (page) => (await call(page, 'changes', { since: 0, limit: 1000 })).map((e) => e.value);
const has = async (page, v) => (await values(page)).includes(v);
const append = (page, value) => call(page, 'append', { value });

await test('three browsers meet in one swarm; a write in one reaches the others over WebRTC only', async () => {
  for (const p of pages) await join(p, 4);
  await until('every browser has a live WebRTC session', async () => {
    for (const p of pages) if ((await liveAttached(p)).length === 0) return false;
    return true;
  });
  for (const p of pages) {
    assert.equal((await conns(p)).filter((x) => x.kind === 'websocket').length, 0, 'no /sync connection');
    const s = await state(p);
    assert.equal(s.hub, 'joined');
    assert.equal(s.members.length, 2);
  }
  // Every live channel proved the key the signalling named.
  for (const p of pages) for (const x of await liveAttached(p)) assert.equal(x.remote, x.expect);
  await append(a, 'written in a');
  await until('b and c have a\'s write', async () => (await has(b, 'written in a')) && (await has(c, 'written in a')));
}, 40000);

await test('one leaves, writes while away, comes back and converges', async () => {
  await call(c, 'swarm_leave');
  await until('c has no live session', async () => (await liveAttached(c)).length === 0);
  await until('a and b see c gone', async () => {
    for (const p of [a, b]) if ((await liveAttached(p)).some((x) => x.remote === keys[2])) return false;
    return true;
  });
  await append(c, 'written in c while away');
  await append(b, 'written in b while c was away');
  await sleep(1000);
  assert.equal(await has(a, 'written in c while away'), false, 'c was away: a cannot have its write');
  await join(c, 4);
  await until('all three hold every write', async () => {
    for (const p of pages) {
      for (const v of ['written in a', 'written in c while away', 'written in b while c was away']) {
        if (!(await has(p, v))) return false;
      }
    }
    return true;
  });
  const heads = await Promise.all(pages.map((p) => call(p, 'heads')));
  const lens = await Promise.all(pages.map((p) => call(p, 'len')));
  assert.deepEqual(new Set(lens).size, 1, `lengths ${lens}`);
  assert.deepEqual(heads[1].sort(), heads[0].sort());
  assert.deepEqual(heads[2].sort(), heads[0].sort());
}, 40000);

// Two real peers, a and b, joined by a WebRTC channel made here; a is told the channel leads
// to c (as a lying signaller would say). b's handshake proves b's key: a must drop it.
await test('a channel whose handshake proves another key than signalled is dropped', async () => {
  const offer = await a.evaluate(async (expect) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.liarPc = pc;
    const channel = pc.createDataChannel('liar');
    window.liarConn = window.cairn.call('attach', { channel, initiator: true, expect });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); }; setTimeout(r, 3000); });
    return pc.localDescription.sdp;
  }, keys[2]);
  const answer = await b.evaluate(async ([sdp, expect]) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.liarPc = pc;
    pc.ondatachannel = (e) => { window.cairn.call('attach', { channel: e.channel, initiator: false, expect }); };
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); }; setTimeout(r, 3000); });
    return pc.localDescription.sdp;
  }, [offer, keys[0]]);
  const id = await a.evaluate(async (sdp) => {
    await window.liarPc.setRemoteDescription({ type: 'answer', sdp });
    return (await window.liarConn).ok.id;
  }, answer);
  const dropped = await until('a drops the channel', async () => {
    const x = (await conns(a)).find((p) => p.id === id);
    return x.state === 'closed' && x.last_error && x;
  });
  assert.match(dropped.last_error, /key mismatch/);
  assert.equal(dropped.remote, keys[1]);
  assert.equal(dropped.expect, keys[2]);
  assert.equal(dropped.nodes_received, 0);
  await a.evaluate(() => window.liarPc.close());
  await b.evaluate(() => window.liarPc.close());
}, 30000);

await test('garbage on a data channel drops that peer; the store stays intact and keeps syncing', async () => {
  const before = { len: await call(a, 'len'), heads: (await call(a, 'heads')).sort() };
  // Two peer connections in a's page: one channel to a's worker, the other sends garbage.
  const id = await a.evaluate(async (expect) => {
    const gather = (pc) => new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') r(); }; setTimeout(r, 3000); });
    const p1 = new RTCPeerConnection({ iceServers: [] });
    const p2 = new RTCPeerConnection({ iceServers: [] });
    window.garbagePcs = [p1, p2];
    const channel = p1.createDataChannel('garbage');
    const conn = window.cairn.call('attach', { channel, initiator: false, expect });
    p2.ondatachannel = (e) => {
      const ch = e.channel;
      ch.onopen = () => {
        for (let i = 0; i < 20; i++) {
          const junk = new Uint8Array(1 + Math.floor(Math.random() * 4000));
          crypto.getRandomValues(junk);
          try { ch.send(junk); } catch {}
        }
        try { ch.send('not even binary'); } catch {}
      };
    };
    await p1.setLocalDescription(await p1.createOffer());
    await gather(p1);
    await p2.setRemoteDescription(p1.localDescription);
    await p2.setLocalDescription(await p2.createAnswer());
    await gather(p2);
    await p1.setRemoteDescription(p2.localDescription);
    return (await conn).ok.id;
  }, keys[1]);
  const dropped = await until('a drops the garbage channel', async () => {
    const x = (await conns(a)).find((p) => p.id === id);
    return x.state === 'closed' && x.last_error && x;
  });
  assert.equal(dropped.nodes_received, 0);
  assert.equal(await call(a, 'len'), before.len);
  assert.deepEqual((await call(a, 'heads')).sort(), before.heads);
  await a.evaluate(() => window.garbagePcs.forEach((p) => p.close()));
  // The swarm sessions were not disturbed: a write in b still reaches a.
  await append(b, 'after the garbage');
  await until('a has b\'s write after the garbage', () => has(a, 'after the garbage'));
  console.log(`     dropped with: ${dropped.last_error}`);
}, 30000);

await test('max_peers is respected, and data still reaches a peer with one connection', async () => {
  await call(c, 'swarm_leave');
  await until('c has no live session', async () => (await liveAttached(c)).length === 0);
  await join(c, 1);
  await until('c has one live session', async () => (await liveAttached(c)).length === 1);
  // For 4 s (a and b both want c; c refuses beyond one): never more than one.
  const end = Date.now() + 4000;
  let busy = 0;
  while (Date.now() < end) {
    const s = await state(c);
    assert.ok(s.peers.length <= 1, `c negotiates or holds ${s.peers.length} peers`);
    const live = (await conns(c)).filter((x) => x.kind === 'attached' && !['closed', 'failed'].includes(x.state));
    assert.ok(live.length <= 1, `c has ${live.length} open channels`);
    busy = s.busy;
    await sleep(200);
  }
  const other = (await liveAttached(c))[0].remote === keys[0] ? b : a;
  await append(other, 'to the peer with one connection');
  await until('c has the write of the peer it is not connected to', () => has(c, 'to the peer with one connection'));
  console.log(`     c refused ${busy} offer(s) as busy`);
}, 30000);

await test('two tabs of one profile in the swarm: the owner tab closes, the other takes over and syncs over WebRTC again', async () => {
  const ctx = await browser.newContext();
  await ctx.grantPermissions(['camera', 'microphone'], { origin });
  try {
    const t1 = await ctx.newPage();
    await openHarness(t1, base + 'peer.html?swarm=');
    const t2 = await ctx.newPage();
    await openHarness(t2, base + 'peer.html?swarm=');
    await until('t1 owns the store', async () => (await t1.evaluate(() => window.cairn.role)) === 'owner');
    assert.equal(await t2.evaluate(() => window.cairn.role), 'follower');
    await join(t1, 4);
    await join(t2, 4); // forwarded to the owner, which is in that swarm already
    await until('the profile has a live WebRTC session', async () => (await liveAttached(t2)).length > 0);
    await append(a, 'before the takeover');
    await until('the follower tab reads a\'s write', () => has(t2, 'before the takeover'));
    await t1.close();
    await until('t2 takes over', async () => (await t2.evaluate(() => window.cairn.role)) === 'owner');
    // The new owner's worker joins the swarm its tabs' pages joined, and its page (where
    // RTCPeerConnection lives) makes the channels.
    await until('t2 has a live WebRTC session of its own', async () => (await liveAttached(t2)).length > 0, 30000);
    await append(b, 'after the takeover');
    await until('t2 has b\'s write', () => has(t2, 'after the takeover'));
  } finally {
    await ctx.close();
  }
}, 60000);

await test('served by cairn serve, the peer page joins swarm "cairn" and the wiki joins "cairn-wiki" by themselves', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await openHarness(page, base + 'peer.html');
  const s = await until('the peer page joined', async () => {
    const s = await call(page, 'swarm');
    return s.hub === 'joined' && s;
  });
  assert.equal(s.swarm, 'cairn');
  await until('the page shows the swarm', async () => /swarm "cairn": hub joined/.test(await page.locator('#swarm').innerText()));
  await page.goto(base);
  await until('the wiki joined', async () => {
    const s = await page.evaluate(() => window.cairn.call('swarm').then((r) => r.ok));
    return s.hub === 'joined' && s.swarm === 'cairn-wiki';
  });
  await until('the wiki is synced live with the server', async () => /synced live/.test(await page.locator('#sync-status').innerText()));
  await ctx.close();
}, 30000);

await browser.close();
served.child.kill('SIGTERM');
await served.exited;
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(done());
