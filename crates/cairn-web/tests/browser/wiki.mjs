// The wiki app (crates/cairn-wiki-app, served as /index.html) in headless Debian Chromium,
// driven as a user would: controls found by role and label. Run by scripts/test-browser.sh
// after scripts/build-web.sh; prints one line per test and a closing "N passed, N failed"
// line; exits non-zero on any failure. Screenshots of the key screens go to OUT_DIR/wiki-*.png.
//
//   node crates/cairn-web/tests/browser/wiki.mjs WWW_DIR OUT_DIR
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { serve, launch, sleep, runner } from './lib.mjs';

const [www, out] = process.argv.slice(2).map((p) => path.resolve(p));
fs.mkdirSync(out, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-wiki-profile-'));
const { server, url } = await serve({ '/': www });

const b = await launch(profile);
const page = b.page;
await page.setViewportSize({ width: 1100, height: 800 });
const problems = [];
page.on('pageerror', (e) => problems.push(String(e)));
// Every request the page makes; nothing may leave 127.0.0.1.
const requests = [];
page.on('request', (r) => requests.push(r.url()));
await page.route((u) => !u.href.startsWith(url), (route) => route.abort());

const { test, done } = runner('wiki', { timeoutMs: 120000, onFail: (n) => page.screenshot({ path: path.join(out, `wiki-fail-${n}.png`) }) });

// A request to the worker through the page's cairn.call; throws on an error answer.
async function call(op, fields = {}) {
  const r = await page.evaluate(([op, f]) => window.cairn.call(op, f), [op, fields]);
  if (r.error) throw new Error(`${op}: ${r.error.kind}: ${r.error.message}`);
  return r.ok;
}
const go = async (hash) => { await page.evaluate((h) => { location.hash = h; }, hash); };
const heading = (name) => page.getByRole('heading', { level: 1, name, exact: true });
const shot = (name) => page.screenshot({ path: path.join(out, `wiki-${name}.png`), fullPage: true });
const editor = () => page.getByRole('textbox', { name: 'Page text' });
const saveButton = () => page.getByRole('button', { name: 'Save', exact: true });
const content = () => page.locator('article .content').first();
async function waitText(locator, re) {
  for (let i = 0; i < 100; i++) {
    const t = (await locator.textContent().catch(() => '')) || '';
    if (re.test(t)) return t;
    await sleep(100);
  }
  throw new Error(`no text matching ${re} in ${await locator.textContent().catch(() => '?')}`);
}

await test('a page URL opens the page with its title even when it does not exist; one click creates it', async () => {
  await page.goto(url + '#/page/Home');
  await heading('Home').waitFor();
  await page.getByText('This page does not exist yet.').waitFor();
  await page.getByRole('link', { name: 'Create this page' }).click();
  await heading('Editing Home').waitFor();
  await saveButton().waitFor();
  await editor().fill('Welcome to **cairn**. See [[Stones]] and [[missing  page]].');
  // Live preview: rendered Markdown with the wiki links, the missing one styled as such.
  await page.locator('.preview strong', { hasText: 'cairn' }).waitFor();
  await page.locator('.preview a.missing', { hasText: 'missing  page' }).waitFor();
  await shot('edit');
  await page.getByRole('textbox', { name: 'Summary' }).fill('first words');
  await saveButton().click();
  await heading('Home').waitFor();
  await waitText(content(), /Welcome to cairn/);
  const missing = page.locator('article .content a.missing', { hasText: 'missing  page' });
  assert.equal(await missing.getAttribute('href'), '#/page/Missing%20page');
  await shot('page');
});

await test('a link to a missing page creates it; the link is then styled as existing', async () => {
  await page.getByRole('link', { name: 'missing  page' }).click();
  await heading('Missing page').waitFor();
  await page.getByRole('link', { name: 'Create this page' }).click();
  await heading('Editing Missing page').waitFor();
  await editor().fill('Now it exists. Back to [[Home]].');
  await saveButton().click();
  await heading('Missing page').waitFor();
  await waitText(content(), /Now it exists/);
  // What links here.
  await page.getByRole('region', { name: 'What links here' }).getByRole('link', { name: 'Home' }).waitFor();
  await go('#/page/Home');
  await heading('Home').waitFor();
  await page.locator('article .content a.wikilink:not(.missing)', { hasText: 'missing  page' }).waitFor();
});

let firstHash;
await test('edit, history, diff, revert', async () => {
  await page.getByRole('link', { name: 'Edit', exact: true }).click();
  await heading('Editing Home').waitFor();
  await waitText(page.locator('.preview'), /Welcome/);
  assert.match(await editor().inputValue(), /Welcome to \*\*cairn\*\*/);
  await editor().fill('Welcome to **cairn**, the peer-to-peer wiki.\n\nSee [[Stones]].');
  await page.getByRole('textbox', { name: 'Summary' }).fill('second words');
  await saveButton().click();
  await heading('Home').waitFor();
  await waitText(content(), /peer-to-peer wiki/);
  await page.getByRole('link', { name: 'History', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'History of Home' }).waitFor();
  const items = page.locator('ol.history > li');
  await items.nth(1).waitFor();
  assert.equal(await items.count(), 2);
  await page.getByText('second words').waitFor();
  await page.getByText('first words').waitFor();
  const hist = await call('wiki_history', { title: 'Home' });
  firstHash = hist[1].hash;
  await shot('history');
  await page.getByRole('link', { name: `Diff of ${hist[0].hash.slice(0, 8)}` }).click();
  await page.getByRole('heading', { level: 1, name: 'Changes to Home' }).waitFor();
  const diff = page.getByLabel('Diff');
  await waitText(diff, /\+Welcome to \*\*cairn\*\*, the peer-to-peer wiki\./);
  assert.match(await page.locator('.diff .del').first().textContent(), /^-Welcome to \*\*cairn\*\*\. See/);
  await shot('diff');
  await page.getByRole('link', { name: 'History', exact: true }).click();
  await page.getByRole('button', { name: `Revert to ${firstHash.slice(0, 8)}` }).click();
  await page.getByRole('status').filter({ hasText: 'Reverted.' }).waitFor();
  await items.nth(2).waitFor();
  const now = await call('wiki_page', { title: 'Home' });
  assert.match(now.versions[0].text, /^Welcome to \*\*cairn\*\*\. See \[\[Stones\]\]/);
  assert.match(now.versions[0].summary, /^revert to /);
});

await test('a hostile page renders inert: no script, no handlers, no javascript: links, no remote images, no raw HTML', async () => {
  const hostile = [
    '# Hostile heading',
    '<script>window.__pwned = "script"</script>',
    '<img src="x" onerror="window.__pwned = \'onerror\'">',
    '<div style="position:fixed;inset:0;background:red" onclick="window.__pwned=\'div\'">cover</div>',
    '[click me](javascript:window.__pwned=\'link\') and [entity](jav&#x61;script:alert(1)) and [data](data:text/html,<script>1</script>)',
    '![remote](http://remote.invalid/tracker.png) ![also](https://remote.invalid/x.svg)',
    'Inline <b onmouseover="window.__pwned=1">bold?</b> <iframe src="https://remote.invalid/"></iframe>',
    '[fine](https://example.org/) and [[Home]] and [[a/b]]',
    '<svg onload="window.__pwned=\'svg\'"></svg>',
  ].join('\n\n');
  await call('wiki_save', { title: 'Hostile', text: hostile, summary: 'x', time: Date.now() });
  const before = requests.length;
  await go('#/page/Hostile');
  await heading('Hostile').waitFor();
  await waitText(content(), /click me/);
  await sleep(300);
  const check = async (root) => page.evaluate((sel) => {
    const el = document.querySelector(sel);
    const all = [...el.querySelectorAll('*')];
    return {
      pwned: window.__pwned,
      scripts: el.querySelectorAll('script, iframe, svg, style, object, embed').length,
      handlers: all.filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
      styles: all.filter((e) => e.hasAttribute('style')).length,
      imgs: el.querySelectorAll('img').length,
      hrefs: [...el.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      text: el.textContent,
    };
  }, root);
  for (const root of ['article .content']) {
    const r = await check(root);
    assert.equal(r.pwned, undefined, 'no script ran');
    assert.deepEqual([r.scripts, r.handlers, r.styles, r.imgs], [0, 0, 0, 0], JSON.stringify(r));
    assert.deepEqual(r.hrefs, ['https://example.org/', '#/page/Home'], 'only the safe links are links');
    assert.match(r.text, /<script>window.__pwned = "script"<\/script>/, 'raw HTML is shown as text');
    assert.match(r.text, /\[image: remote\]/);
  }
  await shot('hostile');
  // The editor's live preview goes through the same renderer.
  await page.getByRole('link', { name: 'Edit', exact: true }).click();
  await waitText(page.locator('.preview'), /click me/);
  const p = await check('.preview');
  assert.equal(p.pwned, undefined);
  assert.deepEqual([p.scripts, p.handlers, p.styles, p.imgs], [0, 0, 0, 0], JSON.stringify(p));
  const remote = requests.slice(before).filter((u) => !u.startsWith(url));
  assert.deepEqual(remote, [], 'no request left this server');
  await go('#/page/Home');
  await heading('Home').waitFor();
});

await test('a fork (two concurrent saves) is shown with each version and merged to one', async () => {
  const base = (await call('wiki_save', { title: 'Fork', text: 'alpha\nbeta\ngamma\n', summary: 'base', time: Date.now() })).hash;
  await call('wiki_save', { title: 'Fork', text: 'ALPHA\nbeta\ngamma\n', summary: 'left', time: Date.now(), links: [base] });
  await call('wiki_save', { title: 'Fork', text: 'alpha\nbeta\nGAMMA\n', summary: 'right', time: Date.now(), links: [base] });
  await go('#/page/Fork');
  await heading('Fork').waitFor();
  await page.getByText('This page is forked:').waitFor();
  await page.getByRole('region', { name: 'Version 1' }).waitFor();
  await page.getByRole('region', { name: 'Version 2' }).waitFor();
  await page.getByText('left', { exact: true }).waitFor();
  await page.getByText('right', { exact: true }).waitFor();
  await shot('fork');
  await page.getByRole('link', { name: 'Merge', exact: true }).click();
  await heading('Editing Fork').waitFor();
  await page.getByText(/Merging 2 versions: the proposal below joins them without conflicts/).waitFor();
  for (let i = 0; i < 50 && (await editor().inputValue()) === ''; i++) await sleep(100);
  assert.equal(await editor().inputValue(), 'ALPHA\nbeta\nGAMMA\n');
  await shot('merge');
  await saveButton().click();
  await heading('Fork').waitFor();
  await waitText(content(), /ALPHA\s+beta\s+GAMMA/);
  const p = await call('wiki_page', { title: 'Fork' });
  assert.equal(p.forked, false);
  assert.equal(p.versions.length, 1);
  assert.equal((await call('wiki_history', { title: 'Fork' })).length, 4);
});

await test('search, page list, recent changes, people (display name, labelled controls)', async () => {
  await page.getByRole('searchbox', { name: 'Search' }).fill('peer wel');
  await page.getByRole('searchbox', { name: 'Search' }).press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Search: peer wel' }).waitFor().catch(() => {});
  await page.getByRole('heading', { level: 1, name: /^Search: / }).waitFor();
  await go('#/search/stones');
  await page.locator('ul.hits a', { hasText: 'Home' }).waitFor();
  await page.getByRole('link', { name: 'Pages', exact: true }).click();
  await heading('All pages').waitFor();
  for (const t of ['Fork', 'Home', 'Hostile', 'Missing page']) {
    await page.locator('ul.pages a', { hasText: t }).first().waitFor();
  }
  await page.getByRole('link', { name: 'People', exact: true }).click();
  await heading('People').waitFor();
  await page.getByRole('textbox', { name: 'Your display name' }).fill('Ada');
  await page.getByRole('button', { name: 'Set name' }).click();
  await page.locator('ul.people li', { hasText: 'Ada' }).waitFor();
  await page.getByRole('link', { name: 'Recent changes', exact: true }).click();
  await heading('Recent changes').waitFor();
  await page.locator('ul.changes li', { hasText: 'Ada' }).first().waitFor();
  // Every control of every screen has an accessible name.
  for (const h of ['#/page/Home', '#/edit/Home', '#/history/Home', '#/people', '#/changes']) {
    await go(h);
    await page.locator('main h1').first().waitFor();
    await sleep(300);
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, textarea, select, a')]
      .filter((e) => {
        const label = e.getAttribute('aria-label') || (e.id && document.querySelector(`label[for="${e.id}"]`)?.textContent)
          || e.textContent;
        return !label || !label.trim();
      }).map((e) => e.outerHTML));
    assert.deepEqual(unnamed, [], h);
  }
  // Keyboard: the search box is reachable with Tab and submits with Enter.
  await go('#/changes');
  await heading('Recent changes').waitFor();
  let focused = '';
  for (let i = 0; i < 10 && focused !== 'search'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.type);
  }
  assert.equal(focused, 'search');
  await page.keyboard.type('alpha');
  await page.keyboard.press('Enter');
  await page.locator('ul.hits a', { hasText: 'Fork' }).waitFor();
});

await test('reload keeps everything', async () => {
  await page.goto(url + '#/page/Home');
  await page.reload();
  await heading('Home').waitFor();
  await waitText(content(), /Welcome to cairn/);
  await go('#/page/Fork');
  await waitText(content(), /ALPHA/);
  const list = await call('wiki_list');
  assert.deepEqual(list.map((p) => p.title), ['Fork', 'Home', 'Hostile', 'Missing page']);
});

await test('readable at phone width (360 px): no horizontal scrolling', async () => {
  await page.setViewportSize({ width: 360, height: 740 });
  for (const [h, name] of [['#/page/Home', 'phone-page'], ['#/edit/Home', 'phone-edit'], ['#/page/Hostile', 'phone-hostile'], ['#/history/Home', 'phone-history']]) {
    await go(h);
    await page.locator('main h1').first().waitFor();
    await sleep(400);
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 360, `${h}: the page is ${w} px wide`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1100, height: 800 });
});

await test('a large wiki lists its first 500 pages until asked for all', async () => {
  const have = (await call('wiki_list')).length;
  await page.evaluate(async (n) => {
    for (let i = 0; i < n; i++) {
      const a = await window.cairn.call('wiki_save', { title: `Stone ${String(i).padStart(3, '0')}`, text: `stone ${i}`, time: Date.now() });
      if (a.error) throw new Error(a.error.message);
    }
  }, 501 - have);
  await go('#/pages');
  await heading('All pages').waitFor();
  await page.locator('main p.meta', { hasText: '501 page(s).' }).waitFor();
  assert.equal(await page.locator('ul.pages li').count(), 500);
  await page.screenshot({ path: path.join(out, 'wiki-pages-large.png') });
  await page.getByRole('button', { name: 'Show all 501' }).click();
  await page.locator('ul.pages li').nth(500).waitFor();
  assert.equal(await page.locator('ul.pages li').count(), 501);
});

await test('no page errors', async () => {
  assert.deepEqual(problems, []);
});

await b.close();
server.close();
fs.rmSync(profile, { recursive: true, force: true });
process.exit(done());
