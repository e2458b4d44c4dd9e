// The harness page: shows the peer's key, length and newest entries and the kv store, and
// exposes the API as `window.cairn` for the browser tests.
import { startCairn } from './cairn.js';
import { startSwarm, hubUrl } from './swarm.js';

const t0 = performance.now();
const cairn = startCairn();
window.cairn = cairn;
const swarm = startSwarm(cairn);
window.swarm = swarm;
const $ = (id) => document.getElementById(id);

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function showPeers(peers) {
  $('peers').tBodies[0].replaceChildren(...peers.map((p) => {
    const tr = document.createElement('tr');
    tr.append(cell(p.id), cell(p.remote ? p.remote.slice(0, 16) + '…' : (p.url || 'attached'), 'mono'),
      cell(p.state, `state-${p.state}`), cell(`${p.nodes_sent} / ${p.nodes_received}`),
      cell(p.last_error || '', 'err'));
    return tr;
  }));
}

function showSwarm(s) {
  if (!s || !s.swarm) { $('swarm').textContent = 'not in a swarm (no hub where this page came from)'; return; }
  $('swarm').textContent = `swarm "${s.swarm}": hub ${s.hub}, ${s.members.length} other member(s), `
    + `${s.connected} connected over WebRTC (at most ${s.max_peers})`;
  $('members').tBodies[0].replaceChildren(...s.members.map((k) => {
    const tr = document.createElement('tr');
    const p = s.peers.find((x) => x.key === k);
    tr.append(cell(k.slice(0, 16) + '…', 'mono'), cell(p ? p.state : 'not connected', p ? `state-${p.state}` : ''));
    return tr;
  }));
}

async function refresh() {
  showPeers((await cairn.call('peers')).ok);
  showSwarm((await cairn.call('swarm')).ok);
  const len = (await cairn.call('len')).ok;
  const heads = (await cairn.call('heads')).ok;
  $('len').textContent = len;
  $('heads').textContent = heads.length;
  const newest = (await cairn.call('changes', { since: Math.max(0, len - 8), limit: 8 })).ok;
  const body = $('entries').tBodies[0];
  body.replaceChildren(...newest.reverse().map((e) => {
    const tr = document.createElement('tr');
    tr.append(cell(e.change), cell(e.value ?? `0x${e.value_hex}`), cell(e.key.slice(0, 16) + '…', 'mono'));
    return tr;
  }));
  const rows = (await cairn.call('kv_list', { limit: 20 })).ok;
  $('kv').tBodies[0].replaceChildren(...rows.map((r) => {
    const tr = document.createElement('tr');
    const vals = Object.values(r.values).map((v) => (v.deleted ? '(deleted)' : JSON.stringify(v.value)));
    tr.append(cell(r.key), cell(vals.join(' | '), 'mono'));
    return tr;
  }));
}
window.refreshView = refresh;

function fail(e) {
  $('status').textContent = String(e.message || e);
  $('status').className = 'err';
}

cairn.ready.then(async (r) => {
  window.firstLoadMs = performance.now() - t0;
  window.readyAt = performance.now(); // since navigation start
  $('status').textContent = `ready in ${Math.round(window.firstLoadMs)} ms (worker, wasm, OPFS store; this tab ${r.role === 'owner' ? 'owns the store' : 'goes through the tab that owns it'})`;
  $('key').textContent = r.public;
  await refresh();
}, fail);

// Connection changes and received nodes: refresh, at most every 200 ms.
let refreshing = null;
cairn.on('swarm', () => {
  if (refreshing) return;
  refreshing = setTimeout(() => { refreshing = null; refresh().catch(fail); }, 200);
});
cairn.on('peers', () => {
  if (refreshing) return;
  refreshing = setTimeout(() => { refreshing = null; refresh().catch(fail); }, 200);
});
$('connect').onclick = async () => {
  const r = await cairn.call('connect', { url: $('url').value });
  if (r.error) return fail(new Error(r.error.message));
  $('url').value = '';
  await refresh();
};
// ?connect=ws://… connects at start (the server prints such a URL).
const start = new URLSearchParams(location.search).get('connect');
if (start) cairn.ready.then(() => cairn.call('connect', { url: start }));
// Served by `cairn serve`: join the swarm "cairn" through its hub (?swarm=NAME picks
// another; ?swarm= with no name joins none).
const swarmName = new URLSearchParams(location.search).get('swarm') ?? 'cairn';
if (swarmName) {
  cairn.ready.then(async () => {
    const url = await hubUrl();
    if (url) await swarm.join(url, swarmName);
    await refresh();
  }).catch(fail);
}

$('append').onclick = async () => {
  const r = await cairn.call('append', { value: $('value').value });
  if (r.error) return fail(new Error(r.error.message));
  $('value').value = '';
  await refresh();
};
$('put').onclick = async () => {
  let value;
  try { value = JSON.parse($('kvvalue').value); } catch { value = $('kvvalue').value; }
  const r = await cairn.call('kv_put', { key: $('kvkey').value, value });
  if (r.error) return fail(new Error(r.error.message));
  await refresh();
};

// The identity: export as a key file (sealed with the passphrase when one is given) and
// import one (a protected file needs its passphrase; a wrong one changes nothing).
function identityStatus(text, bad) {
  $('identity-status').textContent = text;
  $('identity-status').className = bad ? 'err' : '';
}
$('export').onclick = async () => {
  const passphrase = $('export-pass').value;
  identityStatus(passphrase ? 'sealing the key (argon2id)…' : 'exporting…');
  const r = await cairn.call('identity_export', passphrase ? { passphrase } : {});
  if (r.error) return identityStatus(r.error.message, true);
  $('export-pass').value = '';
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([r.ok.key_file], { type: 'text/plain' }));
  a.download = `cairn-${r.ok.public.slice(0, 8)}.key`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  identityStatus(`exported ${a.download} (${r.ok.sealed ? 'passphrase-protected' : 'in the clear: keep it secret'})`);
};
$('import').onclick = async () => {
  const file = $('import-file').files[0];
  if (!file) return identityStatus('choose a key file first', true);
  const passphrase = $('import-pass').value;
  identityStatus('importing…');
  const r = await cairn.call('identity_import', { key_file: await file.text(), ...(passphrase ? { passphrase } : {}) });
  if (r.error) return identityStatus(`${r.error.kind}: ${r.error.message}`, true);
  $('import-pass').value = '';
  $('key').textContent = r.ok.public;
  identityStatus(`imported: this peer is now ${r.ok.public.slice(0, 16)}…`);
};
cairn.on('role', (m) => {
  if (m.role === 'owner' && window.readyAt) $('status').textContent += ' — this tab now owns the store';
});
