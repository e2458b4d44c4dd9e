// The page's half of the WebRTC swarm. RTCPeerConnection exists only on the main thread, so
// the worker (which holds the key, signs and checks the signalling and runs every session)
// asks the page, through `rtc` events, to make peer connections; the page sends the SDPs
// back (`swarm_signal`) and hands each data channel to the worker the moment it exists
// (`attach` with `expect`: the key the signed signalling named; the worker's Noise handshake
// inside the channel must prove it). See src/swarm.rs for the protocol.
//
//   const swarm = startSwarm(cairn);            // before or after the worker is ready
//   await swarm.join('ws://HOST/hub', 'cairn', { maxPeers: 4 });
//   await swarm.state(); await swarm.leave();
//
// SDPs are sent whole once ICE gathering is done (at most 3 s), with no STUN server: this
// is for peers that reach each other directly (a LAN, or loopback in the tests).

const GATHER_MS = 3000;

export function startSwarm(cairn, { iceServers = [] } = {}) {
  const pcs = new Map(); // peer key (hex) -> RTCPeerConnection
  // Each peer's events run in order (an answer waits for its offer's description).
  const chains = new Map();

  const close = (peer) => {
    const pc = pcs.get(peer);
    if (!pc) return;
    pcs.delete(peer);
    try { pc.close(); } catch {}
  };

  const fresh = (peer) => {
    close(peer);
    const pc = new RTCPeerConnection({ iceServers });
    pcs.set(peer, pc);
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && pcs.get(peer) === pc) close(peer);
    });
    return pc;
  };

  const gathered = (pc) => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const timer = setTimeout(resolve, GATHER_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
    });
  });

  const signal = async (peer, pc, kind) => {
    await gathered(pc);
    if (pcs.get(peer) !== pc) return; // replaced or closed meanwhile
    const r = await cairn.call('swarm_signal', { peer, kind, sdp: pc.localDescription.sdp });
    if (r.error) throw new Error(r.error.message);
  };

  const handle = async (m) => {
    const peer = m.peer;
    if (m.do === 'offer') {
      const pc = fresh(peer);
      // Handed over at once: a data channel can only be transferred before it has run.
      const channel = pc.createDataChannel('cairn');
      cairn.call('attach', { channel, initiator: true, expect: peer });
      await pc.setLocalDescription(await pc.createOffer());
      await signal(peer, pc, 'offer');
    } else if (m.do === 'answer') {
      const pc = fresh(peer);
      pc.ondatachannel = (e) => { cairn.call('attach', { channel: e.channel, initiator: false, expect: peer }); };
      await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await signal(peer, pc, 'answer');
    } else if (m.do === 'accept') {
      const pc = pcs.get(peer);
      if (pc && pc.signalingState === 'have-local-offer') {
        await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
      }
    } else if (m.do === 'close') {
      close(peer);
    }
  };

  cairn.on('rtc', (m) => {
    const prev = chains.get(m.peer) || Promise.resolve();
    const next = prev.then(() => handle(m)).catch((e) => {
      console.warn(`swarm: ${m.do} with ${String(m.peer).slice(0, 12)}…: ${e.message || e}`);
      close(m.peer); // the worker gives the negotiation up after its timeout
    });
    chains.set(m.peer, next);
    next.then(() => { if (chains.get(m.peer) === next) chains.delete(m.peer); });
  });

  return {
    pcs,
    join: (url, swarm, { maxPeers } = {}) =>
      cairn.call('swarm_join', maxPeers ? { url, swarm, max_peers: maxPeers } : { url, swarm }),
    leave: () => cairn.call('swarm_leave'),
    state: () => cairn.call('swarm'),
  };
}

// The hub of the server that served this page, or null when none answers there (a static
// server): `cairn serve`'s /hub answers a plain GET with 426 Upgrade Required.
export async function hubUrl() {
  if (!/^https?:$/.test(location.protocol)) return null;
  try {
    const probe = await fetch('/hub', { cache: 'no-store' });
    if (probe.status !== 426) return null;
  } catch {
    return null;
  }
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/hub';
}
