// The cairn worker: a module worker that loads the wasm build (pkg/, made by wasm-bindgen
// --target web), opens the store on OPFS and answers each message of the page with exactly
// one JSON string, in order. See src/api.rs for the requests.
import init, { openPeer, backendSelftest, errorText } from './pkg/cairn_web.js';

let peer = null;
let failed = null;
const pending = [];

function unavailable() {
  return JSON.stringify({ id: null, error: { kind: 'unavailable', message: failed } });
}

function answer(data) {
  // One control message, for the tests: exercise the OPFS backend on a scratch file.
  if (data && typeof data === 'object' && data.control === 'selftest') {
    backendSelftest(String(data.file)).then(
      (ok) => postMessage({ control: 'selftest', ok }),
      (e) => postMessage({ control: 'selftest', error: errorText(e) }));
    return;
  }
  postMessage(peer ? peer.handle(data) : unavailable());
}

self.onmessage = (e) => {
  if (peer || failed) answer(e.data);
  else pending.push(e.data);
};

try {
  await init();
  peer = await openPeer('cairn.redb');
  postMessage(JSON.stringify({ event: 'ready', public: peer.publicKey(), len: peer.len() }));
} catch (e) {
  failed = errorText(e);
  postMessage(JSON.stringify({ event: 'failed', error: failed }));
}
for (const m of pending.splice(0)) answer(m);
