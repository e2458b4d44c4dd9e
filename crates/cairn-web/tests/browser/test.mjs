// cairn-web's tests in a real browser (headless Debian Chromium, driven over CDP by
// playwright-core). Run by scripts/test-browser.sh after the wasm build; prints one line per
// test and a closing "N passed, N failed" line; exits non-zero on any failure.
//
//   node crates/cairn-web/tests/browser/test.mjs WWW_DIR OUT_DIR
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { serve, launch, openHarness, call, sleep, runner } from './lib.mjs';

const [www, out] = process.argv.slice(2).map((p) => path.resolve(p));
fs.mkdirSync(out, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-web-profile-'));
// One server, one port, for the whole run: OPFS is per origin, and the port is in the origin.
const { server, url: root } = await serve({ '/': www });
// The harness page of the served directory (scripts/build-web.sh); the wiki app is /index.html.
const url = root + 'peer.html';

let b = await launch(profile);
const { test, done } = runner('browser', { timeoutMs: 120000 });
const page = () => b.page;

await test('the harness opens the store in a worker on OPFS', async () => {
  const { ready } = await openHarness(page(), url);
  assert.match(ready.public, /^[0-9a-f]{64}$/);
  assert.equal(ready.len, 0);
});

await test('OPFS backend: offsets, gaps, sizes, truncate, flush; redb store reopened', async () => {
  const r = await page().evaluate(() => window.cairn.selftest('selftest.redb'));
  assert.equal(r.error, undefined, r.error);
  assert.match(r.ok, /backend ok; store reopened with 100 nodes/);
});

let firstKey, identity;
await test('message API: append, get, changes, heads, len, kv, identity', async () => {
  const p = page();
  const a = await call(p, 'append', { value: 'hello' });
  const c = await call(p, 'append', { value: 'world' });
  assert.deepEqual([a.change, c.change], [1, 2]);
  firstKey = a.key;
  const got = await call(p, 'get', { key: c.key });
  assert.equal(got.value, 'world');
  assert.deepEqual(got.links, [a.key]);
  identity = (await call(p, 'identity')).public;
  assert.equal(got.author, identity);
  assert.equal(await call(p, 'get', { key: '00'.repeat(32) }), null);
  assert.deepEqual((await call(p, 'changes', { since: 1 })).map((e) => e.value), ['world']);
  assert.deepEqual(await call(p, 'heads'), [c.key]);
  const many = await call(p, 'append_many', { values: ['x', 'y', 'z'] });
  assert.deepEqual(many, { first: 3, last: 5, count: 3 });
  assert.equal(await call(p, 'len'), 5);
  const h1 = await call(p, 'kv_put', { key: 'greeting', value: { text: 'hi' } });
  assert.deepEqual(await call(p, 'kv_get', { key: 'greeting' }), { [h1]: { value: { text: 'hi' } } });
  await call(p, 'kv_put', { key: 'other', value: 1 });
  const h2 = await call(p, 'kv_del', { key: 'other' });
  const list = await call(p, 'kv_list', {});
  assert.deepEqual(list.map((r) => r.key), ['greeting', 'other']);
  assert.deepEqual(list[1].values, { [h2]: { deleted: true } });
  assert.deepEqual((await call(p, 'kv_list', { after: 'greeting' })).map((r) => r.key), ['other']);
  // Identity: export, import another key (writes are signed by it), import the first back.
  const exp = await call(p, 'identity_export');
  assert.equal(exp.public, identity);
  const fresh = await p.evaluate(async () => {
    const m = await import('./pkg/cairn_web.js');
    await m.default();
    return m.newKeyFile();
  });
  const imp = await call(p, 'identity_import', { key_file: fresh });
  assert.notEqual(imp.public, identity);
  const signed = await call(p, 'append', { value: 'by the imported key' });
  assert.equal((await call(p, 'get', { key: signed.key })).author, imp.public);
  assert.equal((await call(p, 'identity_import', { key_file: exp.key_file })).public, identity);
  await p.evaluate(() => window.refreshView());
  await p.screenshot({ path: path.join(out, 'harness.png'), fullPage: true });
});

await test('garbage messages get typed errors; the worker lives on', async () => {
  const p = page();
  const before = await call(p, 'len');
  const kinds = await p.evaluate(async () => {
    const c = window.cairn;
    const rnd = new Uint8Array(300); crypto.getRandomValues(rnd);
    const cut = new Uint8Array([200, 0, 0, 0, 1, 2, 3]);
    const huge = new Uint8Array([255, 255, 255, 255]);
    const msgs = [
      'not json', '', '[]', '42', 'null', '{"op":"nope"}', '{"op":"append"}', '{"op":"append","value":5}',
      '{"op":"get","key":"zz"}', '{"op":"changes","limit":1000000}', '{"op":"changes","since":-1}',
      '{"op":"insert"}', '{"op":"identity_import","key_file":"public: 00\\nsecret: 11"}',
      '{"op":"append_many","values":[]}', '{"op":"kv_put","key":"k"}', '{"id":{"deep":[1,2]},"op":7}',
      '{"op":"append","value":"' + 'x'.repeat(5 << 20) + '"}',
      { json: '{"op":"insert"}', bytes: rnd }, { json: '{"op":"insert"}', bytes: cut },
      { json: '{"op":"insert"}', bytes: huge }, { json: 5 }, { foo: 1 }, null, undefined, 123, true,
      new ArrayBuffer(16), [1, 2, 3],
    ];
    const out = [];
    for (const m of msgs) out.push(await c.raw(m));
    return out.map((r) => (r.error ? r.error.kind : 'OK'));
  });
  assert.equal(kinds.length, 28);
  assert.ok(!kinds.includes('OK'), kinds.join(','));
  assert.deepEqual(kinds.slice(0, 6), ['bad_json', 'bad_json', 'bad_request', 'bad_request', 'bad_request', 'bad_request']);
  assert.equal(kinds[8], 'bad_input');
  assert.equal(kinds[16], 'refused'); // a 5 MiB value is over the 4 MiB limit
  assert.deepEqual(kinds.slice(17, 20), ['bad_nodes', 'bad_nodes', 'bad_nodes']);
  // Still alive, and nothing was written.
  assert.equal(await call(p, 'len'), before);
  assert.equal((await call(p, 'append', { value: 'after garbage' })).change, before + 1);
});

await test('acknowledged writes survive a reload', async () => {
  const p = page();
  const len = await call(p, 'len');
  const heads = await call(p, 'heads');
  await p.reload();
  const { ready } = await openHarness(p, url);
  assert.equal(ready.len, len);
  assert.equal(ready.public, identity);
  assert.deepEqual(await call(p, 'heads'), heads);
  assert.equal((await call(p, 'get', { key: firstKey })).value, 'hello');
});

await test('acknowledged writes survive a browser restart with the same profile', async () => {
  const len = await call(page(), 'len');
  assert.ok(await b.close(), 'the browser did not exit within 15 s of Browser.close');
  b = await launch(profile);
  const { ready } = await openHarness(page(), url);
  assert.equal(ready.len, len);
  assert.equal(ready.public, identity);
});

await test('SIGKILL of the browser mid-write loop loses no acknowledged write (3 rounds)', async () => {
  for (let round = 0; round < 3; round++) {
    const acked = [];
    await page().exposeFunction('acked', (key) => { acked.push(key); });
    const before = await call(page(), 'len');
    await page().evaluate((round) => {
      (async () => {
        for (let i = 0; ; i++) {
          const r = await window.cairn.call('append', { value: `round ${round} write ${i}` });
          if (r.ok) window.acked(r.ok.key);
        }
      })();
    }, round);
    const until = Date.now() + 10000;
    while (acked.length < 40 + 30 * round && Date.now() < until) await sleep(20);
    await b.kill();
    const seen = acked.slice();
    assert.ok(seen.length >= 40, `only ${seen.length} writes acknowledged before the kill`);
    b = await launch(profile);
    const { ready } = await openHarness(page(), url);
    assert.ok(ready.len >= before + seen.length, `len ${ready.len} < ${before} + ${seen.length}`);
    const keys = new Set();
    for (let since = before; since < ready.len; since += 1000) {
      for (const e of await call(page(), 'changes', { since, limit: 1000 })) keys.add(e.key);
    }
    for (const k of seen) assert.ok(keys.has(k), `acknowledged ${k} missing after SIGKILL`);
    console.log(`     round ${round}: ${seen.length} acknowledged, ${ready.len - before} stored`);
  }
}, 240000);

await test('the store holds 100k nodes (and keeps them across a reload)', async () => {
  const p = page();
  const start = await call(p, 'len');
  const t = Date.now();
  const chunk = 5000;
  for (let done = 0; done < 100000; done += chunk) {
    const r = await call(p, 'append_many', { values: Array.from({ length: chunk }, (_, i) => `bulk ${done + i}`) });
    assert.equal(r.count, chunk);
  }
  const secs = (Date.now() - t) / 1000;
  console.log(`     appended 100000 nodes in ${secs.toFixed(1)} s (${Math.round(100000 / secs)} nodes/s, chains of ${chunk})`);
  const len = await call(p, 'len');
  assert.equal(len, start + 100000);
  await p.reload();
  const { ready } = await openHarness(p, url);
  assert.equal(ready.len, len);
  const tail = await call(p, 'changes', { since: len - 3 });
  assert.deepEqual(tail.map((e) => e.value), ['bulk 99997', 'bulk 99998', 'bulk 99999']);
  const mid = (await call(p, 'changes', { since: start + 49999, limit: 1 }))[0];
  assert.equal((await call(p, 'get', { key: mid.key })).value, 'bulk 49999');
  await p.evaluate(() => window.refreshView());
  await p.screenshot({ path: path.join(out, 'harness-100k.png'), fullPage: true });
}, 300000);

await test('a second worker on the same store becomes a follower of the first (no "store in use")', async () => {
  const r = await page().evaluate(async () => {
    const { startCairn } = await import('./cairn.js');
    const second = startCairn();
    try {
      const ready = await second.ready;
      const len = (await second.call('len')).ok;
      return { role: second.role, public: ready.public, len, mine: (await window.cairn.call('len')).ok };
    } catch (e) { return { error: String(e) }; } finally { second.worker.terminate(); }
  });
  assert.equal(r.error, undefined, r.error);
  assert.equal(r.role, 'follower');
  assert.equal(r.public, await call(page(), 'identity').then((i) => i.public));
  assert.equal(r.len, r.mine);
});

await b.close();
server.close();
fs.rmSync(profile, { recursive: true, force: true });
process.exit(done());
