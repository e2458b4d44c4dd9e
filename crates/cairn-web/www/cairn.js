// The page's side of the message API: starts the worker and sends it requests.
// `call(op, fields, bytes)` resolves with the response object ({id, ok} or {id, error}).
// Answers are matched to calls by id: the worker may post events between them (and, with
// live sessions running, answers need not come in the order the page expects), so `call`
// numbers every request. `raw(msg)` posts a message as it is (for tests of bad input): its
// answer is the next one whose id is not a pending call's (id-less garbage gets id null).
// `on(event, cb)` subscribes to the worker's events: `peers` (a connection changed state or
// moved nodes: `{event, what, peer}`), `ready` / `failed` once at start, and `role`.
//
// Tabs of one profile share one store (see worker.js): this tab's worker either owns it or
// forwards to the tab that does. `role` is 'owner' or 'follower' (null until known); the
// `role` event says when it changes (a follower takes over when the owner's tab closes).
// The API is the same in both roles, except that data channels attach in the owner's tab only.

export function startCairn(workerUrl = new URL('./worker.js', import.meta.url)) {
  const worker = new Worker(workerUrl, { type: 'module' });
  const pending = new Map(); // call id -> resolve
  const raws = []; // resolves of raw() posts, oldest first
  const listeners = new Map(); // event -> [cb]
  let selftest = null;
  let nextId = 1;
  let onReady, onFailed;
  const ready = new Promise((res, rej) => { onReady = res; onFailed = rej; });
  const emit = (name, m) => { for (const cb of listeners.get(name) || []) { try { cb(m); } catch (e) { console.error(e); } } };
  worker.onmessage = (e) => {
    if (e.data && typeof e.data === 'object' && e.data.control === 'selftest') {
      const s = selftest; selftest = null;
      if (s) s(e.data);
      return;
    }
    const m = JSON.parse(e.data);
    if (m.event) {
      if (m.event === 'role') api.role = m.role;
      if (m.event === 'ready') onReady(m);
      if (m.event === 'failed') onFailed(new Error(m.error));
      emit(m.event, m);
      return;
    }
    const res = typeof m.id === 'number' && pending.get(m.id);
    if (res) {
      pending.delete(m.id);
      res(m);
    } else {
      const next = raws.shift();
      if (next) next(m);
    }
  };
  const api = {
    ready,
    worker,
    role: null,
    call(op, fields = {}, bytes, transfer) {
      const id = nextId++;
      const { channel, ...rest } = fields;
      const json = JSON.stringify({ ...rest, id, op });
      return new Promise((res) => {
        pending.set(id, res);
        if (channel) worker.postMessage({ json, channel }, transfer || [channel]);
        else worker.postMessage(bytes ? { json, bytes } : json);
      });
    },
    raw: (msg) => new Promise((res) => {
      raws.push(res);
      worker.postMessage(msg);
    }),
    on(event, cb) {
      if (!listeners.has(event)) listeners.set(event, []);
      listeners.get(event).push(cb);
    },
    selftest: (file) => new Promise((res) => {
      selftest = res;
      worker.postMessage({ control: 'selftest', file });
    }),
  };
  return api;
}
