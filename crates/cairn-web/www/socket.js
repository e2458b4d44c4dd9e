// A WebSocket on a thread of its own, for the cairn worker (worker.js, `RelaySocket`).
//
// Why: Chromium buffers only a little of a WebSocket's incoming data for the thread that owns
// it; while that thread is busy (the cairn worker verifying and committing a batch of 4 MiB
// for a quarter of a second), the network service stops reading the socket, and afterwards
// the data comes back a small chunk per round trip between processes. Here the socket's
// thread does nothing else, so every message is read at once and posted on to the cairn
// worker, whose message queue holds it until it is ready. What may queue there is bounded by
// cairn-sync's flow control: the peer sends only as many bytes as the worker granted credit
// for, and the worker grants credit only for bytes it has processed.
//
// Messages in:  {t: 'open', url} once, then {t: 'send', data: ArrayBuffer} and {t: 'close'}.
// Messages out: {t: 'open'}, {t: 'msg', data: ArrayBuffer}, {t: 'sent', n, buffered},
//               {t: 'error'}, {t: 'close', code}.
let ws = null;

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
      if (ev.data instanceof ArrayBuffer) self.postMessage({ t: 'msg', data: ev.data }, [ev.data]);
      else self.postMessage({ t: 'msg', data: String(ev.data) });
    };
    ws.onerror = () => self.postMessage({ t: 'error' });
    ws.onclose = (ev) => self.postMessage({ t: 'close', code: ev.code });
  } else if (m.t === 'send' && ws) {
    const n = m.data.byteLength;
    try {
      ws.send(m.data);
    } catch (err) {
      self.postMessage({ t: 'error' });
    }
    self.postMessage({ t: 'sent', n, buffered: ws.bufferedAmount });
  } else if (m.t === 'close' && ws) {
    ws.close();
  }
};
