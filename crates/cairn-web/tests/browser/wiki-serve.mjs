// The wiki as a user runs it: `cairn serve --http … --web target/www` on a store holding the
// example wiki, three browser contexts opening the served app, and the `cairn wiki` command
// working on the same store through the running server (its control socket). Checks, through
// the UI found by role and label: the served wiki reaches a fresh browser and shows; an edit
// saved in one browser appears in the others without a reload; an edit from the command line
// appears in the browsers; a browser's edit is what `cairn wiki show` prints; the status badge
// says the browser is synced; two browsers editing one page while disconnected make a fork
// that every browser and the CLI show, and a merge in a third makes one version everywhere. Prints one line per test and a closing "N passed, N failed".
//
//   node crates/cairn-web/tests/browser/wiki-serve.mjs WWW_DIR OUT_DIR CAIRN_BINARY
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { FLAGS, runner, until as poll, startServe } from './lib.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const [www, out, cairn] = process.argv.slice(2).map((p) => path.resolve(p));
const examples = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../../examples/wiki');
fs.mkdirSync(out, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-wiki-serve-test-'));
const data = path.join(tmp, 'server');
const run = (args, input) => execFileSync(cairn, ['--data', data, ...args],
  { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] }).trim();

run(['init']);
run(['wiki', 'import', examples]);
const image = run(['blob', 'add', path.join(examples, 'images', 'cairn.svg')]);
const served = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--web', www]);
const { child } = served;
const base = served.lines[1];

const { test, done } = runner('served');
const until = (what, check, ms = 30000) => poll(what, check, ms, 100);
const text = (page) => page.locator('main').innerText();

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: FLAGS });
const pages = [];
try {
  for (let i = 0; i < 3; i++) {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (e) => console.log(`     [page ${i}] ${e}`));
    await page.goto(base + '#/page/Home');
    pages.push(page);
  }

  await test('the served wiki reaches three fresh browsers, each synced live with the server', async () => {
    for (const page of pages) {
      await until('Home shown', async () => /Welcome to the cairn wiki/.test(await text(page)));
      await until('badge live', async () => /synced live/.test(await page.locator('#sync-status').innerText()));
    }
    await pages[0].screenshot({ path: path.join(out, 'served-home.png') });
  });

  await test("the example's image, a blob on the server, shows in the page that names it", async () => {
    const page = pages[1];
    await page.goto(base + '#/page/Cairn');
    const img = page.locator(`main img[data-blob="${image}"]`);
    await until('image loaded', async () => (await img.count()) === 1
      && await img.evaluate((e) => e.complete && e.naturalWidth > 0));
    await page.screenshot({ path: path.join(out, 'served-image.png') });
  });

  await test('an edit saved in one browser appears in the others without a reload', async () => {
    const [a, b, c] = pages;
    await b.goto(base + '#/page/Trail marker');
    await c.goto(base + '#/page/Trail marker');
    await a.goto(base + '#/edit/Trail marker');
    const box = a.getByRole('textbox', { name: 'Page text' });
    await until('editor filled', async () => (await box.inputValue()).length > 0);
    await box.fill((await box.inputValue()) + '\n\nEdited in browser A: a new line about trails.\n');
    await a.getByRole('button', { name: 'Save' }).click();
    for (const p of [b, c]) {
      await until('edit visible', async () => /Edited in browser A/.test(await text(p)));
    }
  });

  await test('an edit from the command line (through the running server) appears in the browsers', async () => {
    run(['wiki', 'edit', 'Cairn etiquette', '-', '--summary', 'from the shell'],
      'Edited from the shell while the server runs. See [[Home]].\n');
    for (const p of pages) {
      await p.goto(base + '#/page/Cairn etiquette');
      await until('shell edit visible', async () => /Edited from the shell/.test(await text(p)));
    }
    await pages[1].screenshot({ path: path.join(out, 'served-shell-edit.png') });
  });

  await test('a page created in a browser is what `cairn wiki show` prints', async () => {
    const a = pages[2];
    await a.goto(base + '#/edit/Made in a browser');
    await a.getByRole('textbox', { name: 'Page text' }).fill('Written in browser C, read from the shell.\n');
    await a.getByRole('button', { name: 'Save' }).click();
    await until('shown by the CLI', async () => /Written in browser C/.test(run(['wiki', 'show', 'Made in a browser'])));
  });

  await test('concurrent edits while disconnected: the fork shows in every browser, a merge in one makes one version everywhere', async () => {
    const [a, b, c] = pages;
    const title = 'Offline fork';
    const api = async (page, op, fields = {}) => {
      const r = await page.evaluate(([o, f]) => window.cairn.call(o, f), [op, fields]);
      if (r.error) throw new Error(`${op}: ${r.error.kind}: ${r.error.message}`);
      return r.ok;
    };
    const save = async (page, body) => {
      await page.goto(base + `#/edit/${title}`);
      const box = page.getByRole('textbox', { name: 'Page text' });
      // Save is enabled once the page's current text is loaded into the editor.
      await until('editor loaded', async () => (await page.getByRole('heading', { level: 1 }).innerText()).includes(title)
        && await page.getByRole('button', { name: 'Save' }).isEnabled());
      await box.fill(body);
      await page.getByRole('button', { name: 'Save' }).click();
      await until('saved', async () => (await text(page)).includes(body.split('\n')[0]));
    };
    await save(a, 'first line\nsecond line\nthird line\n');
    for (const p of [b, c]) {
      await p.goto(base + `#/page/${title}`);
      await until('base version synced', async () => /third line/.test(await text(p)));
    }
    // A and B go offline: their connections to the server end (and they leave the swarm, where
    // there is one), so neither hears of the other's edit.
    const offline = async (page) => {
      for (const conn of await api(page, 'peers')) {
        if (conn.state !== 'closed') await api(page, 'disconnect', { conn: conn.id });
      }
      await page.evaluate(() => window.cairn.call('swarm_leave', {}));
    };
    await offline(a);
    await offline(b);
    await save(a, 'FIRST LINE (A, offline)\nsecond line\nthird line\n');
    await save(b, 'first line\nsecond line\nTHIRD LINE (B, offline)\n');
    // Back online: both versions reach the server and C; every browser shows the fork.
    const wsUrl = base.replace(/^http/, 'ws') + 'sync';
    await api(a, 'connect', { url: wsUrl });
    await api(b, 'connect', { url: wsUrl });
    for (const p of pages) {
      await p.goto(base + `#/page/${title}`);
      await until('fork shown', async () => /This page is forked/.test(await text(p)), 30000);
      await p.getByRole('region', { name: 'Version 2' }).waitFor();
    }
    await c.screenshot({ path: path.join(out, 'served-fork.png'), fullPage: true });
    assert.match(run(['wiki', 'show', title]), /forked/i);
    // C merges: the editor proposes the three-way merge from the common ancestor.
    await c.getByRole('link', { name: 'Merge', exact: true }).click();
    const box = c.getByRole('textbox', { name: 'Page text' });
    await until('merge proposed', async () => (await box.inputValue()) === 'FIRST LINE (A, offline)\nsecond line\nTHIRD LINE (B, offline)\n');
    await c.screenshot({ path: path.join(out, 'served-merge.png'), fullPage: true });
    await c.getByRole('button', { name: 'Save' }).click();
    for (const p of pages) {
      await p.goto(base + `#/page/${title}`);
      await until('one merged version', async () => {
        const t = await text(p);
        return /FIRST LINE \(A, offline\)/.test(t) && /THIRD LINE \(B, offline\)/.test(t) && !/This page is forked/.test(t);
      }, 30000);
    }
    const shown = run(['wiki', 'show', title]);
    assert.doesNotMatch(shown, /forked/i);
    assert.match(shown, /FIRST LINE \(A, offline\)[\s\S]*THIRD LINE \(B, offline\)/);
  });
} finally {
  await browser.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(done());
