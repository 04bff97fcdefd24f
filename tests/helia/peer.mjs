// A Helia node (a real IPFS implementation we did not write) as a foreign Bitswap peer for interop tests.
// TCP + noise + yamux + identify on 127.0.0.1 only: no bootstrap list, no routers, no mDNS, UPnP, relay or
// AutoNAT, so it reaches nobody but the peers a test names.
//
//   node peer.mjs add FILE [--v0]        add FILE (CIDv1 raw leaves, or --v0: CIDv0 with dag-pb leaves), print
//                                        {"cid", "addrs"} as one JSON line, serve until stdin closes
//   node peer.mjs cat CID MULTIADDR OUT  dial MULTIADDR, fetch CID over Bitswap into OUT, print {"bytes"}
import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createHeliaLight } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'

const [mode, ...args] = process.argv.slice(2)

const helia = createHeliaLight({ routers: [] })
withLibp2pLight(helia, {
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  peerDiscovery: [],
  services: { identify: identify() }
})
withBitswap(helia)
await helia.start()
const fs = unixfs(helia)

if (mode === 'add') {
  const [file, flag] = args
  const v0 = flag === '--v0'
  const cid = await fs.addByteStream(createReadStream(file), {
    cidVersion: v0 ? 0 : 1,
    rawLeaves: !v0,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  })
  const addrs = helia.libp2p.getMultiaddrs().map(a => a.toString())
  console.log(JSON.stringify({ cid: cid.toString(), addrs }))
  process.stdin.resume()
  await once(process.stdin, 'end')
  await helia.stop()
} else if (mode === 'cat') {
  const [cid, addr, out] = args
  await helia.libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(20_000) })
  const sink = createWriteStream(out)
  let bytes = 0
  for await (const chunk of fs.cat(CID.parse(cid), { signal: AbortSignal.timeout(60_000) })) {
    bytes += chunk.length
    if (!sink.write(chunk)) await once(sink, 'drain')
  }
  sink.end()
  await once(sink, 'finish')
  console.log(JSON.stringify({ bytes }))
  await helia.stop()
} else {
  console.error('usage: peer.mjs add FILE [--v0] | cat CID MULTIADDR OUT')
  process.exit(2)
}
