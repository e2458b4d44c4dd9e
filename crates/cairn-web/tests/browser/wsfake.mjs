// Hostile WebSocket servers for the sync tests, on 127.0.0.1 only (a minimal RFC 6455 server:
// the upgrade, masked client frames in, unmasked binary frames out; no extensions).
//
// - garbage(): answers the upgrade, then sends random bytes where the Noise handshake should be;
// - tamperingProxy(tcpAddr, n): relays each WebSocket message to `cairn serve`'s TCP listener
//   (2-byte big-endian length + message) and back, faithfully for the first `n` messages from
//   the server (the handshake and identity messages), then flips a bit in every later one:
//   the browser sees a server that speaks garbage after a good handshake.
import net from 'node:net';
import http from 'node:http';
import crypto from 'node:crypto';

function accept(req, socket) {
  const key = req.headers['sec-websocket-key'];
  const acceptKey = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey}\r\n\r\n`);
}

function frame(payload, opcode = 2) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) { head = Buffer.alloc(4); head[0] = 0x80 | opcode; head[1] = 126; head.writeUInt16BE(len, 2); }
  else { head = Buffer.alloc(10); head[0] = 0x80 | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(len), 2); }
  return Buffer.concat([head, payload]);
}

// Parses masked client frames from `socket`, calling onMessage(Buffer) per binary message.
function readFrames(socket, onMessage, onClose) {
  let buf = Buffer.alloc(0);
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0] & 0x0f;
      let len = buf[1] & 0x7f, at = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); at = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); at = 10; }
      const masked = buf[1] & 0x80;
      if (buf.length < at + (masked ? 4 : 0) + len) return;
      const mask = masked ? buf.subarray(at, at + 4) : null;
      at += masked ? 4 : 0;
      const payload = Buffer.from(buf.subarray(at, at + len));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      buf = buf.subarray(at + len);
      if (opcode === 8) { socket.end(); onClose(); return; }
      if (opcode === 2) onMessage(payload);
    }
  });
  socket.on('close', onClose);
  socket.on('error', () => {});
}

function listen(onUpgrade) {
  const server = http.createServer((_, res) => res.writeHead(426).end());
  const sockets = new Set();
  server.on('upgrade', (req, socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    accept(req, socket);
    onUpgrade(socket);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `ws://127.0.0.1:${server.address().port}`,
    close() { for (const s of sockets) s.destroy(); server.close(); },
  })));
}

export function garbage() {
  let connections = 0;
  return listen((socket) => {
    connections++;
    socket.write(frame(crypto.randomBytes(96)));
    readFrames(socket, () => socket.write(frame(crypto.randomBytes(200))), () => {});
  }).then((s) => ({ ...s, connections: () => connections }));
}

export function tamperingProxy(tcpAddr, faithful) {
  const [host, port] = tcpAddr.split(':');
  let tampered = 0;
  return listen((socket) => {
    const tcp = net.connect(Number(port), host);
    tcp.on('error', () => socket.destroy());
    let fromServer = 0, buf = Buffer.alloc(0);
    tcp.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        if (++fromServer > faithful) { msg[msg.length >> 1] ^= 0x20; tampered++; }
        socket.write(frame(msg));
      }
    });
    tcp.on('close', () => socket.destroy());
    readFrames(socket, (msg) => {
      const head = Buffer.alloc(2); head.writeUInt16BE(msg.length);
      tcp.write(Buffer.concat([head, msg]));
    }, () => tcp.destroy());
  }).then((s) => ({ ...s, tampered: () => tampered }));
}
