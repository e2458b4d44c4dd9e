// A WebSocket on a thread of its own, for the cairn worker (worker.js, `RelaySocket`).
//
// Why: Chromium buffers only a little of a WebSocket's incoming data for the thread that owns
// it; while that thread is busy (the cairn worker verifying and committing a batch of received
// nodes, tenths of a second), the network service stops reading the socket, and afterwards
// the data comes back a small chunk per round trip between processes. Here the socket's
// thread does nothing else, so every message is read at once and posted on to the cairn
// worker, whose message queue holds it until it is ready. What may queue there is bounded by
// cairn-sync's flow control: an honest peer sends only as many bytes as the worker granted
// credit for (8 MiB on the log channel, 256 KiB on the blob channel, plus a frame), and the
// worker grants credit only for bytes it has processed. A peer that sends regardless would
// fill the worker's queue while it is busy, so this thread counts the bytes it passed on that
// the worker has not taken yet (it says so every MiB) and closes the socket past MAX_AHEAD.
//
// Messages in:  {t: 'open', url} once, then {t: 'send', data: ArrayBuffer}, {t: 'took', n}
//               and {t: 'close'}.
// Messages out: {t: 'open'}, {t: 'msg', data: ArrayBuffer}, {t: 'sent', n, buffered},
//               {t: 'error'}, {t: 'close', code}.
const MAX_AHEAD = 64 << 20;
let ws = null;
let ahead = 0; // bytes passed on that the worker has not taken yet
let closed = false;

function fail(code) {
  if (closed) return;
  closed = true;
  ws.onmessage = ws.onclose = ws.onerror = null;
  ws.close();
  self.postMessage({ t: 'error' });
  self.postMessage({ t: 'close', code });
}

self.onmessage = (e) => {
  const m = e.data;
  if (m.t === 'open' && !ws) {
    try {
      ws = new WebSocket(m.url);
    } catch (err) {
      self.postMessage({ t: 'error' });
      self.postMessage({ t: 'close', code: 1006 });
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => self.postMessage({ t: 'open' });
    ws.onmessage = (ev) => {
      if (closed) return;
      if (!(ev.data instanceof ArrayBuffer)) {
        self.postMessage({ t: 'msg', data: String(ev.data) });
        return;
      }
      ahead += ev.data.byteLength;
      // 1009: "message too big" — the peer ignored the flow control.
      if (ahead > MAX_AHEAD) return fail(1009);
      self.postMessage({ t: 'msg', data: ev.data }, [ev.data]);
    };
    ws.onerror = () => self.postMessage({ t: 'error' });
    ws.onclose = (ev) => { closed = true; self.postMessage({ t: 'close', code: ev.code }); };
  } else if (m.t === 'send' && ws) {
    const n = m.data.byteLength;
    try {
      ws.send(m.data);
    } catch (err) {
      self.postMessage({ t: 'error' });
    }
    self.postMessage({ t: 'sent', n, buffered: ws.bufferedAmount });
  } else if (m.t === 'took') {
    ahead -= m.n;
  } else if (m.t === 'close' && ws) {
    ws.close();
  }
};
