// The cairn worker: a module worker that loads the wasm build (pkg/, made by wasm-bindgen
// --target web) and answers each message of its page with exactly one JSON string, in order
// (around a takeover, a read sent again may come later: answers carry the request's id).
// See src/api.rs for the requests.
//
// Several tabs of one profile share one store (the pattern of SQLite-wasm's OPFS VFS and
// PGlite): the OPFS file can be open in one worker only, so every tab's worker asks for the
// Web Lock `cairn-store`, and the one that holds it is the OWNER: it opens the store, runs the
// network (connect, attach, swarm_*) and answers. The others are FOLLOWERS: they forward each
// request of their page to the owner and pass its answer and its events back; each waits for
// the lock, which the browser frees when the owner's tab closes or dies, and then takes over.
//
// Between workers of different tabs the only channel is a BroadcastChannel (a MessagePort
// cannot be handed from one tab's worker to another's without a page or a service worker in
// between, and BroadcastChannel cannot carry one), so:
//   cairn-bus         announcements ({type:'owner', tab}, {type:'who'}, {type:'failed'}) and
//                     the owner's events ({type:'event', json}; `rtc` events stay on the
//                     owner's page, where RTCPeerConnection lives);
//   cairn-req         follower → owner: {from, seq, data} (data as the page posted it: the
//                     JSON text, or {json, bytes} for insert; bytes are copied);
//   cairn-reply/TAB   owner → that follower: {seq, answer}.
// Only the owner listens on cairn-req and only one follower on each reply channel, so a
// request is copied once each way.
//
// A follower's request that the owner has not answered when it goes away: a read is sent
// again to the new owner; anything else is answered {error: {kind: 'unavailable',
// retryable: true}} (it may or may not have been applied; the caller decides). A page hears
// its tab's role as {event: 'role', role: 'owner' | 'follower'}, and `ready` once.
import init, { openPeer, backendSelftest, errorText } from './pkg/cairn_web.js';

const STORE = 'cairn.redb';
const LOCK = 'cairn-store';
// Requests that change nothing: sent again to a new owner when the old one went away.
const READS = new Set(['get', 'changes', 'heads', 'len', 'kv_get', 'kv_list', 'identity', 'peers']);

const tab = crypto.randomUUID();
const toPage = self.postMessage.bind(self);
const bus = new BroadcastChannel('cairn-bus');

let role = 'starting'; // 'starting' | 'follower' | 'opening' | 'owner' | 'failed'
let peer = null;
let failed = null;
let readySent = false;
let owner = null; // the owner's tab id, as a follower knows it
let seq = 0;
const early = []; // page messages before this worker knows its role
const waiting = []; // a follower's messages while no owner is known (none in flight)
const inFlight = new Map(); // seq -> {data, op, id, done}: forwarded, not answered yet
const replyTo = new Map(); // follower tab -> its reply channel (owner side)
const connects = new Set(); // URLs this tab's page asked to connect to (sent to each new owner)
let swarmJoin = null; // the page's last swarm_join (JSON text), sent to each new owner too

// The wasm peer's own events (net.rs posts `peers`, the swarm posts `rtc`): to this tab's
// page, and from the owner to every follower's page too (except `rtc`).
self.postMessage = (m, transfer) => {
  toPage(m, transfer);
  if (role === 'owner' && typeof m === 'string') {
    let name;
    try { name = JSON.parse(m).event; } catch { name = null; }
    if (name && name !== 'rtc') bus.postMessage({ type: 'event', json: m });
  }
};

const event = (obj) => toPage(JSON.stringify(obj));

// The page's request as {op, id} (null when it is not a JSON request).
// A WebSocket whose socket lives on a thread of its own (socket.js says why), with the
// WebSocket interface net.rs uses: readyState, binaryType, bufferedAmount, send, close and the
// four handlers. net.rs dials through `self.cairnSocket` when it exists.
class RelaySocket {
  constructor(url) {
    this.readyState = 0;
    this.binaryType = 'arraybuffer';
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this.posted = 0; // bytes handed to the socket thread, not yet sent by it
    this.wsBuffered = 0; // the socket's own bufferedAmount, as last reported
    this.took = 0; // bytes of messages handed to onmessage, not yet reported to the socket thread
    this.w = new Worker(new URL('./socket.js', import.meta.url), { type: 'module' });
    this.w.onmessage = (e) => { this.started = true; this.event(e.data); };
    this.w.onerror = () => {
      // The socket thread did not start (socket.js missing or refused): later sockets are
      // plain ones on this thread.
      if (!this.started) relayBroken = true;
      this.event({ t: 'error' });
      this.event({ t: 'close', code: 1006 });
    };
    this.w.postMessage({ t: 'open', url });
  }
  get bufferedAmount() { return this.posted + this.wsBuffered; }
  event(m) {
    if (this.readyState === 3) return;
    if (m.t === 'msg') {
      const n = m.data.byteLength || 0;
      this.onmessage?.({ data: m.data });
      this.took += n;
      if (this.took >= 1 << 20) {
        this.w.postMessage({ t: 'took', n: this.took });
        this.took = 0;
      }
    }
    else if (m.t === 'sent') { this.posted -= m.n; this.wsBuffered = m.buffered; }
    else if (m.t === 'open') { this.readyState = 1; this.onopen?.({}); }
    else if (m.t === 'error') this.onerror?.({});
    else if (m.t === 'close') { this.readyState = 3; this.w.terminate(); this.onclose?.({ code: m.code }); }
  }
  send(bytes) {
    if (this.readyState !== 1) throw new Error('the socket is not open');
    const data = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
    this.posted += data.byteLength;
    this.w.postMessage({ t: 'send', data }, [data]);
  }
  close() {
    if (this.readyState === 3) return;
    this.readyState = 2;
    this.w.postMessage({ t: 'close' });
    // The socket thread ends with the socket's close event; at the latest, now and then.
    setTimeout(() => this.event({ t: 'close', code: 1006 }), 5000);
  }
}
let relayBroken = false;
self.cairnSocket = (url) => {
  if (!relayBroken) {
    try {
      return new RelaySocket(url);
    } catch {
      relayBroken = true;
    }
  }
  return new WebSocket(url);
};

function describe(data) {
  const text = typeof data === 'string' ? data : data && typeof data === 'object' ? data.json : null;
  if (typeof text !== 'string') return { op: null, id: null };
  try {
    const r = JSON.parse(text);
    return r && typeof r === 'object' ? { op: r.op ?? null, id: r.id ?? null } : { op: null, id: null };
  } catch { return { op: null, id: null }; }
}

function errorAnswer(id, kind, message, retryable) {
  return JSON.stringify({ id, error: { kind, message, ...(retryable ? { retryable } : {}) } });
}

// The owner's answer to one message (from its page or forwarded).
function handleHere(data) {
  if (peer) return peer.handle(data);
  return errorAnswer(describe(data).id, 'unavailable', failed || 'the store is not open', false);
}

function fromPage(data) {
  // One control message, for the tests: exercise the OPFS backend on a scratch file (in
  // this tab's worker, whatever its role).
  if (data && typeof data === 'object' && data.control === 'selftest') {
    backendSelftest(String(data.file)).then(
      (ok) => toPage({ control: 'selftest', ok }),
      (e) => toPage({ control: 'selftest', error: errorText(e) }));
    return;
  }
  const { op } = describe(data);
  if (op === 'connect') {
    try { connects.add(JSON.parse(typeof data === 'string' ? data : data.json).url); } catch {}
  }
  if (op === 'swarm_join' && typeof data === 'string') swarmJoin = data;
  if (op === 'swarm_leave') swarmJoin = null;
  if (role === 'starting') { early.push(data); return; }
  // A connection the page ends is not dialled again by a later owner.
  const reply = op === 'disconnect' ? (a) => { forget(a); toPage(a); } : toPage;
  if (role === 'owner' || role === 'failed') { reply(handleHere(data)); return; }
  // A follower (or a follower taking over).
  if (data && typeof data === 'object' && data.channel) {
    toPage(errorAnswer(describe(data).id, 'not_owner',
      'this tab is a follower: data channels attach in the owner tab (see the role event)', false));
    return;
  }
  if (role === 'follower' && owner) forward(data, reply);
  else waiting.push(op === 'disconnect' ? { again: { data, op, id: describe(data).id, done: reply } } : data);
}

function forget(answer) {
  try { connects.delete(JSON.parse(answer).ok.url); } catch {}
}

self.onmessage = (e) => fromPage(e.data);

// Follower: sends `data` to the owner; `done(answer)` gets its answer.
function forward(data, done) {
  const n = ++seq;
  const { op, id } = describe(data);
  inFlight.set(n, { data, op, id, done });
  try {
    requests().postMessage({ from: tab, seq: n, data });
  } catch (e) {
    // Something a worker can receive but not send on (a transferred port, a stream, …).
    inFlight.delete(n);
    done(errorAnswer(id, 'bad_request', `cannot be forwarded to the owner tab: ${e.message}`, false));
  }
}

let reqChannel = null;
function requests() { return reqChannel || (reqChannel = new BroadcastChannel('cairn-req')); }

const replies = new BroadcastChannel(`cairn-reply/${tab}`);
replies.onmessage = (e) => {
  const f = inFlight.get(e.data.seq);
  if (!f) return;
  inFlight.delete(e.data.seq);
  f.done(e.data.answer);
};

// The owner went away (or another took over) before answering these: reads go again, to the
// new owner; the rest fail with a retryable `unavailable`.
function ownerGone() {
  const lost = [...inFlight.values()];
  inFlight.clear();
  for (const f of lost) {
    if (READS.has(f.op)) waiting.push({ again: f });
    else f.done(errorAnswer(f.id, 'unavailable',
      'the tab that owned the store closed before answering; the request may or may not have been applied', true));
  }
}

function flushWaiting() {
  for (const w of waiting.splice(0)) {
    if (w && w.again) {
      if (role === 'owner') w.again.done(handleHere(w.again.data));
      else forward(w.again.data, w.again.done);
    } else if (role === 'owner') {
      toPage(handleHere(w));
    } else {
      forward(w, toPage);
    }
  }
}

// The page's connections and swarm, asked of a new owner (connect to a URL already
// connected returns that connection, and joining the swarm the owner is in already changes
// nothing, so this is harmless when the owner has them).
function reconnect() {
  const again = [...connects].map((url) => JSON.stringify({ op: 'connect', url }));
  if (swarmJoin) again.push(swarmJoin);
  for (const data of again) {
    if (role === 'owner') handleHere(data);
    else forward(data, () => {});
  }
}

bus.onmessage = (e) => {
  const m = e.data;
  if (!m || typeof m !== 'object') return;
  if (m.type === 'who' && role === 'owner') bus.postMessage({ type: 'owner', tab });
  else if (m.type === 'event' && role === 'follower') toPage(m.json);
  else if (m.type === 'failed' && role === 'follower' && !readySent) {
    failed = m.error;
    role = 'failed';
    event({ event: 'failed', error: failed });
  } else if (m.type === 'owner' && m.tab !== tab && role === 'follower' && m.tab !== owner) {
    const first = owner === null;
    if (!first) ownerGone();
    owner = m.tab;
    flushWaiting();
    if (first) followerReady();
    else reconnect();
  }
};

function followerReady() {
  // `ready` carries the store's identity and length, as the owner's does.
  forward(JSON.stringify({ op: 'identity' }), (a) => {
    const pub = JSON.parse(a).ok?.public;
    forward(JSON.stringify({ op: 'len' }), (b) => {
      if (readySent || role !== 'follower') return;
      readySent = true;
      event({ event: 'ready', public: pub, len: JSON.parse(b).ok, role: 'follower' });
    });
  });
}

function becomeFollower() {
  role = 'follower';
  event({ event: 'role', role });
  for (const m of early.splice(0)) fromPage(m);
  bus.postMessage({ type: 'who' });
}

// Holding the lock: open the store (the previous owner's handle may take a moment to close
// after its tab died: retried for 10 s), then answer everyone.
async function becomeOwner() {
  const wasFollower = role === 'follower';
  role = 'opening';
  let lastError = null;
  for (let i = 0; i < 100 && !peer; i++) {
    try {
      peer = await openPeer(STORE);
    } catch (e) {
      lastError = errorText(e);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!peer) {
    failed = lastError;
    role = 'failed';
    bus.postMessage({ type: 'failed', error: failed });
    if (!readySent) event({ event: 'failed', error: failed });
    for (const m of early.splice(0)) fromPage(m);
    flushWaiting();
    return;
  }
  role = 'owner';
  owner = tab;
  requests().onmessage = (e) => {
    const { from, seq: n, data } = e.data || {};
    if (typeof from !== 'string') return;
    if (!replyTo.has(from)) replyTo.set(from, new BroadcastChannel(`cairn-reply/${from}`));
    replyTo.get(from).postMessage({ seq: n, answer: handleHere(data) });
  };
  bus.postMessage({ type: 'owner', tab });
  event({ event: 'role', role: 'owner' });
  if (!readySent) {
    readySent = true;
    event({ event: 'ready', public: peer.publicKey(), len: peer.len(), role: 'owner' });
  }
  if (wasFollower) ownerGone();
  for (const m of early.splice(0)) fromPage(m);
  flushWaiting();
  reconnect();
}

try {
  await init();
} catch (e) {
  failed = errorText(e);
  role = 'failed';
  event({ event: 'failed', error: failed });
  for (const m of early.splice(0)) fromPage(m);
}

// Never awaits a held lock at the top level: the module's evaluation ends, and the lock
// callbacks run on their own.
if (role !== 'failed') {
  const forever = () => new Promise(() => {});
  if (!self.navigator.locks) {
    // No Web Locks (not a secure context): this tab opens the store alone, as before.
    await becomeOwner();
  } else {
    const got = await new Promise((resolve) => {
      navigator.locks.request(LOCK, { ifAvailable: true }, async (lock) => {
        resolve(Boolean(lock));
        if (!lock) return;
        await becomeOwner();
        await forever(); // held until this worker ends
      }).catch(() => resolve(false));
    });
    if (!got) {
      becomeFollower();
      // Granted when the owner's tab closes: take over.
      navigator.locks.request(LOCK, async () => { await becomeOwner(); await forever(); });
    }
  }
}
