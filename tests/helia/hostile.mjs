// A hostile js-libp2p client (the libp2p of the Helia harness, a stack we did not write) for the attack tests.
// TCP + noise + yamux on 127.0.0.1 only, no discovery, no routers: it reaches only the node a test names.
//
//   node hostile.mjs dup-wants MULTIADDR CID [STREAMS]  STREAMS streams (default 4), each carrying one message of
//                                                       4,096 want-block entries for CID
//   node hostile.mjs dont-have MULTIADDR [COUNT]        COUNT wants (default 20,000, 1,000 a message) for blocks
//                                                       that exist nowhere, all asking for DontHave
//   node hostile.mjs connections MULTIADDR [COUNT]      COUNT identities (default 40) each open a connection
//   node hostile.mjs providers MULTIADDR [COUNT] [ADDRS] COUNT Kademlia ADD_PROVIDER records (default 100,000)
//                                                       for keys nobody uses, each naming this client with ADDRS
//                                                       addresses (default 16), 256 records a write
//   node hostile.mjs find-providers MULTIADDR CID [PEER] ask the node (GET_PROVIDERS) for CID's providers, again
//                                                       every 250 ms for up to 20 s until PEER is among them;
//                                                       `providers` lists the peer ids it named
//
// Prints one JSON line {"attack", "sent", "answers", "closed"} and exits: `answers` counts answer bytes read,
// `closed` whether the node reset or closed our streams or connections.
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { peerIdFromMultihash } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'

const BITSWAP = '/ipfs/bitswap/1.2.0'
const KAD = '/ipfs/kad/1.0.0'
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

// Kademlia messages (dht.proto): type 1, key 2, providerPeers 9 (Peer: id 1, addrs 2), length-prefixed.
const ADD_PROVIDER = 2
const GET_PROVIDERS = 3
function kadFrame (type, key, providers = []) {
  const peers = providers.map(p => bytesField(9, concat([bytesField(1, p.id), ...p.addrs.map(a => bytesField(2, a))])))
  const body = concat([intField(1, type), bytesField(2, key), ...peers])
  return concat([varint(body.length), body])
}

// The fields of one protobuf message, as [field number, value] (bytes for length-delimited, numbers otherwise).
function fields (buf) {
  const out = []
  let at = 0
  const read = () => {
    let n = 0; let shift = 1
    for (;;) {
      const b = buf[at++]
      if (b === undefined) throw new Error('truncated varint')
      n += (b & 0x7f) * shift; shift *= 128
      if (b < 0x80) return n
    }
  }
  while (at < buf.length) {
    const key = read()
    const wire = key & 7
    if (wire === 0) out.push([key >>> 3, read()])
    else if (wire === 2) { const len = read(); out.push([key >>> 3, buf.subarray(at, at + len)]); at += len } else throw new Error(`wire type ${wire}`)
  }
  return out
}

// Ask for the providers of `key` on a new stream: the peer ids the answer names.
async function getProviders (p2p, target, key) {
  const stream = await p2p.dialProtocol(target, KAD, { signal: AbortSignal.timeout(20_000) })
  stream.send(kadFrame(GET_PROVIDERS, key))
  let buf = new Uint8Array(0)
  const found = []
  for await (const chunk of stream) {
    buf = concat([buf, chunk.subarray()])
    let len = 0; let shift = 1; let at = 0
    for (;;) {
      if (at >= buf.length) break
      const b = buf[at++]
      len += (b & 0x7f) * shift; shift *= 128
      if (b < 0x80) break
    }
    if (buf.length < at + len) continue
    for (const [n, peer] of fields(buf.subarray(at, at + len))) {
      if (n !== 9) continue
      const id = fields(peer).find(([f]) => f === 1)
      if (id) found.push(peerIdFromMultihash(Digest.decode(id[1])).toString())
    }
    break
  }
  await stream.close().catch(() => {})
  return found
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
} else if (attack === 'providers') {
  // The node keeps a quota of a peer's records for keys it does not know; the rest are refused (and the stream
  // or the connection may be closed). `answers` is how many records went out before that.
  const p2p = await node()
  const count = Number(arg ?? 100_000)
  const naddrs = Number(extra ?? 16)
  const me = { id: p2p.peerId.toMultihash().bytes, addrs: [] }
  for (let i = 0; i < naddrs; i++) me.addrs.push(multiaddr(`/ip4/10.0.${Math.floor(i / 250)}.${i % 250 + 1}/tcp/4001`).bytes)
  const key = new Uint8Array(34)
  key[0] = 0x12; key[1] = 32
  const rand = crypto.getRandomValues(new Uint8Array(8))
  let stream = null
  while (out.sent < count) {
    if (stream === null || stream.status !== 'open') {
      try {
        stream = await p2p.dialProtocol(target, KAD, { signal: AbortSignal.timeout(20_000) })
      } catch { out.closed = true; break }
    }
    const frames = []
    for (let i = 0; i < 256 && out.sent < count; i++, out.sent++) {
      new DataView(key.buffer).setUint32(2, out.sent)
      key.set(rand, 6)
      frames.push(kadFrame(ADD_PROVIDER, key, [me]))
    }
    try {
      if (!stream.send(concat(frames))) await stream.onDrain({ signal: AbortSignal.timeout(20_000) })
    } catch { out.closed = true; stream = null }
  }
  out.answers = out.sent
  out.closed ||= p2p.getConnections().length === 0
  await p2p.stop()
} else if (attack === 'find-providers') {
  const p2p = await node()
  const key = CID.parse(arg).multihash.bytes
  const deadline = Date.now() + 20_000
  let found = []
  for (;;) {
    found = await getProviders(p2p, target, key).catch(() => [])
    if (extra === undefined || found.includes(extra) || Date.now() > deadline) break
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  out.sent = 1
  out.answers = found.length
  out.providers = found
  await p2p.stop()
} else {
  console.error('usage: node hostile.mjs dup-wants|dont-have|connections|providers|find-providers MULTIADDR [ARG]')
  process.exit(2)
}
console.log(JSON.stringify(out))
process.exit(0)
