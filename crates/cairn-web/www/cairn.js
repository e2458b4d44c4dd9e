// The page's side of the message API: starts the worker and sends it requests.
// `call(op, fields, bytes)` resolves with the response object ({id, ok} or {id, error}).
// The worker answers every message once, in order, so answers are matched first in, first out.

export function startCairn(workerUrl = new URL('./worker.js', import.meta.url)) {
  const worker = new Worker(workerUrl, { type: 'module' });
  const queue = [];
  let selftest = null;
  let nextId = 1;
  let onReady, onFailed;
  const ready = new Promise((res, rej) => { onReady = res; onFailed = rej; });
  worker.onmessage = (e) => {
    if (e.data && typeof e.data === 'object' && e.data.control === 'selftest') {
      const s = selftest; selftest = null;
      if (s) s(e.data);
      return;
    }
    const m = JSON.parse(e.data);
    if (m.event === 'ready') return onReady(m);
    if (m.event === 'failed') return onFailed(new Error(m.error));
    const next = queue.shift();
    if (next) next(m);
  };
  const post = (msg, transfer) => new Promise((res) => {
    queue.push(res);
    worker.postMessage(msg, transfer || []);
  });
  return {
    ready,
    worker,
    call(op, fields = {}, bytes) {
      const json = JSON.stringify({ id: nextId++, op, ...fields });
      return post(bytes ? { json, bytes } : json);
    },
    raw: (msg) => post(msg),
    selftest: (file) => new Promise((res) => {
      selftest = res;
      worker.postMessage({ control: 'selftest', file });
    }),
  };
}
