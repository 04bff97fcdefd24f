// Prints the root CID that Helia's UnixFS importer gives each file named on the command line, with the
// settings of `ipfs add --cid-version 1 --raw-leaves --chunker size-262144` (balanced layout, 174 links).
// Output: one JSON array of {file, cid}. No network: Helia's UnixFS layer over an in-memory blockstore.
import { createReadStream } from 'node:fs'
import { unixfs } from '@helia/unixfs'
import { MemoryBlockstore } from 'blockstore-core'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const fs = unixfs({ blockstore: new MemoryBlockstore() })
const out = []
for (const file of process.argv.slice(2)) {
  const cid = await fs.addByteStream(createReadStream(file), {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: 262144 }),
    layout: balanced({ maxChildrenPerNode: 174 })
  })
  out.push({ file, cid: cid.toString() })
}
console.log(JSON.stringify(out))
