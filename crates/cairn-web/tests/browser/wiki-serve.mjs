// The wiki as a user runs it: `cairn serve --http … --web target/www` on a store holding the
// example wiki, three browser contexts opening the served app, and the `cairn wiki` command
// working on the same store through the running server (its control socket). Checks, through
// the UI found by role and label: the served wiki reaches a fresh browser and shows; an edit
// saved in one browser appears in the others without a reload; an edit from the command line
// appears in the browsers; a browser's edit is what `cairn wiki show` prints; the status badge
// says the browser is synced. Prints one line per test and a closing "N passed, N failed".
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
} finally {
  await browser.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(done());
