// Shared pieces of the browser tests and the benchmark: a static server on 127.0.0.1 and a
// Debian Chromium started by us (so that the test knows its pid and can SIGKILL it), driven
// by playwright-core over CDP with a profile directory that outlives the browser.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm', '.bin': 'application/octet-stream', '.json': 'application/json',
};

// Serves `roots` (URL prefix → directory) on 127.0.0.1:port (0: any free port).
export function serve(roots, port = 0) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const prefix = Object.keys(roots).filter((p) => url.pathname.startsWith(p))
      .sort((a, b) => b.length - a.length)[0];
    if (prefix === undefined) { res.writeHead(404).end(); return; }
    const rel = decodeURIComponent(url.pathname.slice(prefix.length)) || 'index.html';
    const file = path.join(roots[prefix], rel);
    if (!file.startsWith(roots[prefix]) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end(); return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
      'cache-control': 'no-store',
    });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => {
    resolve({ server, port: server.address().port, url: `http://127.0.0.1:${server.address().port}/` });
  }));
}

export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Starts /usr/bin/chromium on `profile` and connects to it. Returns {browser, page, pid, kill}.
export async function launch(profile) {
  const child = spawn('/usr/bin/chromium',
    [...FLAGS, '--remote-debugging-port=0', `--user-data-dir=${profile}`, 'about:blank'],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const ws = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('chromium did not start in 30 s')), 30000);
    child.stderr.on('data', (d) => {
      buf += d;
      const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`chromium exited: ${code}\n${buf}`)); });
  });
  child.stderr.resume();
  const exited = new Promise((r) => child.on('exit', r));
  const browser = await chromium.connectOverCDP(ws);
  const context = browser.contexts()[0];
  const page = context.pages()[0] || await context.newPage();
  return {
    browser, context, page, pid: child.pid,
    // SIGKILL of the whole process group we started (browser, renderers, GPU, utilities).
    async kill() { try { process.kill(-child.pid, 'SIGKILL'); } catch {} await exited; },
    // A clean shutdown through the DevTools protocol (Browser.close: the browser exits as when
    // its last window closes). Returns whether it exited by itself within 15 s; it is killed
    // after that, so a test never leaves a browser behind.
    async close() {
      const cdp = await browser.newBrowserCDPSession();
      await cdp.send('Browser.close').catch(() => {});
      const clean = await Promise.race([exited.then(() => true), sleep(15000).then(() => false)]);
      await this.kill();
      return clean;
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Opens the harness page and waits until its worker has the store open.
export async function openHarness(page, url) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.goto(url);
  const ready = await page.evaluate(() => window.cairn.ready.then((r) => r, (e) => ({ failed: String(e) })));
  if (ready.failed) throw new Error(`store did not open: ${ready.failed}`);
  return { ready, problems };
}

// call(op, fields) inside the page; throws on an error response.
export async function call(page, op, fields = {}) {
  const r = await page.evaluate(([op, f]) => window.cairn.call(op, f), [op, fields]);
  if (r.error) throw new Error(`${op}: ${r.error.kind}: ${r.error.message}`);
  return r.ok;
}

// A test runner: `test(name, fn, timeoutMs)` runs one test with a time limit and prints one
// line; `done()` prints the closing "LABEL: N passed, N failed" line (counted by
// scripts/test.sh) and returns the exit code. `onFail(n)` runs after a failure (a screenshot).
export function runner(label, { timeoutMs = 90000, onFail = null } = {}) {
  let passed = 0, failed = 0;
  return {
    async test(name, fn, ms = timeoutMs) {
      const t = Date.now();
      let timer;
      try {
        await Promise.race([fn(), new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
        })]);
        passed++;
        console.log(`ok   ${name} (${Date.now() - t} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${name} (${Date.now() - t} ms): ${e.stack || e}`);
        if (onFail) await Promise.resolve(onFail(passed + failed)).catch(() => {});
      } finally {
        clearTimeout(timer);
      }
    },
    done() {
      console.log(`${label}: ${passed} passed, ${failed} failed`);
      return failed ? 1 : 0;
    },
  };
}

// Polls `check()` (async, truthy when done; a throw counts as not yet) every `every` ms until
// `ms` have passed, then throws naming `what`.
export async function until(what, check, ms = 20000, every = 25) {
  const end = Date.now() + ms;
  let last = null;
  for (;;) {
    const v = await Promise.resolve().then(check).catch((e) => { last = e; return false; });
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${last})` : ''}`);
    await sleep(every);
  }
}

// Starts `cairn --data DATA serve ARGS…` and waits (30 s at most) until its stdout has
// `lines` lines. Returns {child, lines, exited, stderr()}; stdout lines are the addresses
// `cairn serve` prints on start, in the order of its listeners.
export async function startServe(cairn, data, args, lines = 2) {
  const child = spawn(cairn, ['--data', data, 'serve', ...args, '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const out = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`cairn serve did not start: ${err}`)), 30000);
    child.stdout.on('data', (d) => {
      buf += d;
      const l = buf.split('\n');
      if (l.length > lines) { clearTimeout(timer); resolve(l.slice(0, lines)); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`cairn serve exited ${code}: ${err}`)); });
  });
  child.stdout.resume();
  const exited = new Promise((r) => child.on('exit', r));
  return { child, lines: out, exited, stderr: () => err };
}

// The wiki benches' words: 2,000 of them (cairn-bench's `wiki` writes the same).
export const benchVocab = () => Array.from({ length: 2000 }, (_, i) => `w${(i * 7919) % 100003}x${i % 26}`);

// Opens `count` random pages of a bench wiki ("Page i", text starting "marker{i}end") as a
// user does — a hash change — and times each until its text is rendered. Milliseconds.
export async function timeOpenPages(page, pages, count, rnd) {
  const out = [];
  for (let k = 0; k < count; k++) {
    const i = rnd(pages);
    out.push(await page.evaluate(async (i) => {
      const t = performance.now();
      location.hash = `#/page/Page%20${i}`;
      for (;;) {
        const c = document.querySelector('article .content');
        if (c && c.textContent.startsWith(`marker${i}end`)) return performance.now() - t;
        await new Promise((r) => requestAnimationFrame(r));
      }
    }, i));
  }
  return out;
}

// Searches `count` times from the page list as a user does: the query typed in the
// searchbox (labelled "Search"), then Enter, timed in the page from Enter until the results
// are rendered. Milliseconds.
export async function timeSearches(page, vocab, count, rnd) {
  const out = [];
  for (let k = 0; k < count; k++) {
    const q = k % 2 ? vocab[rnd(vocab.length)] : `${vocab[rnd(vocab.length)]} ${vocab[rnd(vocab.length)].slice(0, 3)}`;
    await page.evaluate(() => { location.hash = '#/pages'; });
    await page.waitForSelector('ul.pages');
    const box = page.getByRole('searchbox', { name: 'Search' });
    await box.fill(q);
    out.push(await page.evaluate(async (q) => {
      const input = document.querySelector('input[type=search]');
      const t = performance.now();
      input.form.requestSubmit();
      for (;;) {
        const h = document.querySelector('main h1')?.textContent || '';
        const meta = document.querySelector('main p.meta')?.textContent || '';
        if (h === `Search: ${q}` && /page\(s\) found/.test(meta)) return performance.now() - t;
        await new Promise((r) => requestAnimationFrame(r));
      }
    }, q));
  }
  return out;
}

// Waits until `cairn serve` at `base` serves both wasm modules brotli-compressed: it makes
// the compressed copies in the background at start (seconds of CPU), which a bench should not
// measure as part of what follows, as on a server that has been up for a while.
export async function untilCompressed(base) {
  const coding = async (file) => {
    const r = await fetch(base + file, { method: 'HEAD', headers: { 'accept-encoding': 'br, gzip' } });
    return r.headers.get('content-encoding');
  };
  await until('the compressed copies', async () => (await coding('pkg/cairn_web_bg.wasm')) === 'br'
    && (await coding('wiki/cairn_wiki_app_bg.wasm')) === 'br', 120000, 100);
}

// A bench wiki of `pages` pages and `edits` edits written natively (`cairn-bench wiki`) into a
// new server store, served by `cairn serve --http … --web WWW` (its files compressed).
// Returns the generator's figures, the server and its base URL, a scratch directory and a
// `close()`.
export async function serveBenchWiki(cairn, bench, www, pages, edits) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-bench-wiki-'));
  const data = path.join(tmp, 'server');
  const gen = JSON.parse(execFileSync(bench, ['wiki', '--dir', data, '--pages', String(pages), '--n', String(edits)], { encoding: 'utf8' }));
  const srv = await startServe(cairn, data, ['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--web', www]);
  await untilCompressed(srv.lines[1]);
  const close = async () => {
    srv.child.kill('SIGTERM');
    await srv.exited;
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  return { gen, base: srv.lines[1], tmp, close };
}
