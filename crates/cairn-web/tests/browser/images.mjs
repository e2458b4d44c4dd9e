// Images in the wiki app, in headless Debian Chromium, found by role and label as a user would:
// a PNG picked with "Add image", pasted and dropped into the editor is stored as a blob by the
// browser's own worker (OPFS; over 16 KiB, so in the database's chunk-group tables), the
// editor gets `![name](blob:<hex>)`, the preview and the saved page show it — also after a
// reload with no server for blobs at all (every /blob/ request is refused). Then, with
// `cairn serve` and two browsers: an image added in browser A shows in browser B, fetched over
// B's sync connection (B's /blob/ requests are refused, so it cannot come from there).
// Prints one line per test and a closing "images: N passed, N failed".
//
//   node crates/cairn-web/tests/browser/images.mjs WWW_DIR OUT_DIR CAIRN_BINARY
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { FLAGS, serve, launch, runner, until as poll, startServe } from './lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const [www, out, cairn] = process.argv.slice(2).map((p) => path.resolve(p));
fs.mkdirSync(out, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-images-test-'));
const until = (what, check, ms = 30000) => poll(what, check, ms, 100);
const shot = (page, name) => page.screenshot({ path: path.join(out, `images-${name}.png`), fullPage: true });
const { test, done } = runner('images', { timeoutMs: 120000 });

// A noisy PNG (poorly compressible: well over one 16 KiB chunk group), made by a canvas.
async function png(page, seed, w = 160, h = 120) {
  const b64 = await page.evaluate(([seed, w, h]) => {
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const g = c.getContext('2d');
    const img = g.createImageData(w, h);
    let x = seed >>> 0;
    for (let i = 0; i < img.data.length; i++) {
      x = (x * 1664525 + 1013904223) >>> 0;
      img.data[i] = (i % 4 === 3) ? 255 : (x >>> 24);
    }
    g.putImageData(img, 0, 0);
    g.fillStyle = '#c0392b';
    g.fillRect(w / 4, h / 4, w / 2, h / 2);
    return c.toDataURL('image/png').split(',')[1];
  }, [seed, w, h]);
  return Buffer.from(b64, 'base64');
}

const editor = (page) => page.getByRole('textbox', { name: 'Page text' });
const refs = async (page) => [...(await editor(page).inputValue()).matchAll(/!\[[^\]]*\]\(blob:([0-9a-f]{64})\)/g)].map((m) => m[1]);
const loaded = (loc) => loc.evaluate((e) => e.complete && e.naturalWidth > 0 && e.src.startsWith('blob:'));
async function call(page, op, fields = {}) {
  const r = await page.evaluate(([op, f]) => window.cairn.call(op, f), [op, fields]);
  if (r.error) throw new Error(`${op}: ${r.error.kind}: ${r.error.message}`);
  return r.ok;
}

// ---- one browser, no server for blobs -------------------------------------------------------
{
  const profile = path.join(tmp, 'profile');
  const { server, url } = await serve({ '/': www });
  let b = await launch(profile);
  let page = b.page;
  const blobRequests = [];
  const guard = async (p) => {
    p.on('pageerror', (e) => console.log(`     [page] ${e}`));
    // Nothing leaves 127.0.0.1, and no image may come from /blob/.
    await p.route((u) => u.protocol !== 'blob:' && (!u.href.startsWith(url) || u.pathname.startsWith('/blob/')), (route) => {
      if (new URL(route.request().url()).pathname.startsWith('/blob/')) blobRequests.push(route.request().url());
      return route.abort();
    });
  };
  await guard(page);
  await page.setViewportSize({ width: 1100, height: 800 });
  let picked;
  try {
    await test('a PNG picked with "Add image" is stored by the worker and shown in the preview and the saved page', async () => {
      await page.goto(url + '#/edit/Pictures');
      await editor(page).waitFor();
      await until('editor ready', async () => page.getByRole('button', { name: 'Save', exact: true }).isEnabled());
      await editor(page).fill('A picture:\n\n');
      const bytes = await png(page, 1);
      assert.ok(bytes.length > 16384, `the PNG is ${bytes.length} bytes`);
      await page.getByLabel('Add image').setInputFiles({ name: 'noise.png', mimeType: 'image/png', buffer: bytes });
      await until('markdown inserted', async () => (await refs(page)).length === 1);
      [picked] = await refs(page);
      assert.match(await editor(page).inputValue(), /^A picture:\n\n!\[noise\]\(blob:[0-9a-f]{64}\)$/);
      const has = await call(page, 'blob_has', { hash: picked });
      assert.equal(has.size, bytes.length);
      const preview = page.locator('.preview img');
      await until('preview image', async () => (await preview.count()) === 1 && loaded(preview));
      await shot(page, 'editor');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      const img = page.locator('article img');
      await until('page image', async () => (await img.count()) === 1 && loaded(img));
      assert.equal(await img.evaluate((e) => e.naturalWidth), 160);
      assert.equal(await img.getAttribute('alt'), 'noise');
    });

    await test('pasting and dropping an image file insert it at the cursor', async () => {
      await page.goto(url + '#/edit/Pictures');
      await until('editor filled', async () => (await refs(page)).length === 1);
      const b64 = (await png(page, 2, 90, 70)).toString('base64');
      // The cursor at the very start: the pasted image goes there.
      await editor(page).evaluate((e) => { e.focus(); e.setSelectionRange(0, 0); });
      await editor(page).evaluate((e, b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'pasted.png', { type: 'image/png' }));
        e.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      }, b64);
      await until('pasted', async () => (await refs(page)).length === 2);
      assert.match(await editor(page).inputValue(), /^!\[pasted\]\(blob:[0-9a-f]{64}\)A picture:/);
      const b64c = (await png(page, 3, 60, 50)).toString('base64');
      await editor(page).evaluate((e, b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
        e.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      }, b64c);
      await until('dropped', async () => (await refs(page)).length === 3);
      const previews = page.locator('.preview img');
      await until('three preview images', async () => (await previews.count()) === 3
        && (await previews.evaluateAll((l) => l.every((e) => e.complete && e.naturalWidth > 0))));
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await until('three page images', async () => (await page.locator('article img').count()) === 3);
      await shot(page, 'page');
    });

    await test('after a browser restart the images still show, from the browser\'s own store', async () => {
      await b.close();
      b = await launch(profile);
      page = b.page;
      await guard(page);
      await page.goto(url + '#/page/Pictures');
      const imgs = page.locator('article img');
      await until('three images again', async () => (await imgs.count()) === 3
        && (await imgs.evaluateAll((l) => l.every((e) => e.complete && e.naturalWidth > 0 && e.src.startsWith('blob:')))));
      const ls = await call(page, 'blob_ls');
      assert.equal(ls.filter((x) => x.state === 'complete').length, 3, JSON.stringify(ls));
      assert.deepEqual(blobRequests, [], 'no image came from /blob/');
      await shot(page, 'restart');
    });

    await test('a file over the limit is refused with a message; nothing is inserted', async () => {
      await page.goto(url + '#/edit/Pictures');
      await until('editor filled', async () => (await refs(page)).length === 3);
      const huge = path.join(tmp, 'huge.png');
      fs.writeFileSync(huge, Buffer.alloc((16 << 20) + 1));
      await page.getByLabel('Add image').setInputFiles(huge);
      await page.getByRole('alert').filter({ hasText: 'at most 16 MiB' }).waitFor();
      assert.equal((await refs(page)).length, 3);
    });
  } finally {
    await b.kill();
    server.close();
  }
}

// ---- cairn serve and two browsers -----------------------------------------------------------
{
  const data = path.join(tmp, 'server');
  execFileSync(cairn, ['--data', data, 'init'], { stdio: 'ignore' });
  const served = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--web', www]);
  const base = served.lines[1];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
  try {
    const pages = [];
    const blobRequests = [];
    for (let i = 0; i < 2; i++) {
      const p = await (await browser.newContext()).newPage();
      p.on('pageerror', (e) => console.log(`     [page ${i}] ${e}`));
      if (i === 1) {
        await p.route((u) => u.pathname.startsWith('/blob/'), (route) => { blobRequests.push(route.request().url()); return route.abort(); });
      }
      await p.goto(base + '#/page/Home');
      await until('badge live', async () => /synced live/.test(await p.locator('#sync-status').innerText()));
      pages.push(p);
    }

    await test('an image added in browser A shows in browser B, fetched over the sync connection', async () => {
      const [pa, pb] = pages;
      await pa.goto(base + '#/edit/Shared picture');
      await until('editor ready', async () => pa.getByRole('button', { name: 'Save', exact: true }).isEnabled());
      await pa.getByLabel('Add image').setInputFiles({ name: 'shared.png', mimeType: 'image/png', buffer: await png(pa, 7) });
      await until('markdown inserted', async () => (await refs(pa)).length === 1);
      const [hash] = await refs(pa);
      await pa.getByRole('button', { name: 'Save', exact: true }).click();
      await pb.goto(base + '#/page/Shared picture');
      const img = pb.locator('article img');
      await until('image shown in B', async () => (await img.count()) === 1 && loaded(img), 60000);
      assert.equal(await img.evaluate((e) => e.naturalWidth), 160);
      const has = await call(pb, 'blob_has', { hash });
      assert.ok(has && has.size > 16384, JSON.stringify(has));
      assert.ok(blobRequests.every((u) => u.includes(hash)), 'only this blob was tried on /blob/ (refused)');
      await shot(pb, 'served-b');
    }, 120000);
  } finally {
    await browser.close();
    served.child.kill('SIGTERM');
    await served.exited;
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(done());
