#!/usr/bin/env node
// Writes ../record-vectors.json (release records v2: abi.encode and keccak256 by viem) and
// ../rollout-vectors.json (rollout shares and device eligibility, computed here from their definitions).
// Run: npm install && node make.mjs (in this folder). The Rust tests and the contract's Foundry tests read
// the output; neither runs this script.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { encodeAbiParameters, keccak256, concat, toHex, stringToHex, hexToBigInt } from 'viem'

const here = dirname(fileURLToPath(import.meta.url))
const release = [{
  type: 'tuple',
  components: [
    { name: 'product', type: 'bytes32' },
    { name: 'sequence', type: 'uint64' },
    { name: 'baseHash', type: 'bytes32' },
    { name: 'targetHash', type: 'bytes32' },
    { name: 'targetSize', type: 'uint64' },
    { name: 'patchCid', type: 'bytes' },
    { name: 'patchHash', type: 'bytes32' },
    { name: 'patchSize', type: 'uint64' },
    { name: 'kind', type: 'uint8' },
    { name: 'minSequence', type: 'uint64' },
    {
      name: 'terms',
      type: 'tuple',
      components: [
        { name: 'hardware', type: 'bytes32[]' },
        { name: 'notAfter', type: 'uint64' },
        { name: 'rolloutStart', type: 'uint16' },
        { name: 'rolloutStep', type: 'uint16' },
        { name: 'rolloutInterval', type: 'uint64' },
        { name: 'notesCid', type: 'bytes' },
      ],
    },
  ],
}]

const b32 = (s) => stringToHex(s, { size: 32 })
const cid = '0x01551220404657c5de6e0befe97c9208541bb7d70a2fd6152b4d468bf8866ad76e912022'
const records = [
  {
    product: 'acme-sensor', sequence: 2n, baseHash: '0xe0ac8727a0af29423e097512e3e892f8b76ac06051a031f555ed1af80b2c2538',
    targetHash: '0x347a44dc1a22ce76ac8a75331732a6c3d60356119ffd7d5aa66c26532ea3641b', targetSize: 4194304n, patchCid: cid,
    patchHash: '0x25d7733c2a40f09ec1406ae8e5641c69a32f177401d33e8e3c8ba56f3952f93b', patchSize: 123456n, kind: 0,
    minSequence: 1n,
    terms: { hardware: [b32('acme-board-rev-a'), b32('acme-board-rev-b')], notAfter: 1900000000n, rolloutStart: 1000,
      rolloutStep: 2000, rolloutInterval: 3600n, notesCid: cid },
  },
  {
    product: 'acme-gateway', sequence: 1n, baseHash: '0x' + '00'.repeat(32),
    targetHash: '0x' + 'ab'.repeat(32), targetSize: 1n, patchCid: '0x01701220' + '12'.repeat(32),
    patchHash: '0x' + 'cd'.repeat(32), patchSize: 18446744073709551615n, kind: 1, minSequence: 0n,
    terms: { hardware: [], notAfter: 0n, rolloutStart: 10000, rolloutStep: 0, rolloutInterval: 0n, notesCid: '0x' },
  },
  {
    product: 'x', sequence: 18446744073709551615n, baseHash: '0x' + '11'.repeat(32), targetHash: '0x' + '22'.repeat(32),
    targetSize: 7n, patchCid: '0x01551e20' + '55'.repeat(32), patchHash: '0x' + '33'.repeat(32), patchSize: 9n, kind: 0,
    minSequence: 18446744073709551615n,
    terms: { hardware: ['0x' + '01'.repeat(32)], notAfter: 18446744073709551615n, rolloutStart: 0, rolloutStep: 1,
      rolloutInterval: 18446744073709551615n, notesCid: '0x01551340' + 'ee'.repeat(64) },
  },
]

const vectors = records.map((r) => {
  const encoded = encodeAbiParameters(release, [{ ...r, product: b32(r.product) }])
  return {
    product: r.product,
    sequence: r.sequence.toString(),
    base_hash: r.baseHash,
    target_hash: r.targetHash,
    target_size: r.targetSize.toString(),
    patch_cid: r.patchCid,
    patch_hash: r.patchHash,
    patch_size: r.patchSize.toString(),
    kind: r.kind,
    min_sequence: r.minSequence.toString(),
    hardware: r.terms.hardware,
    not_after: r.terms.notAfter.toString(),
    rollout_start: r.terms.rolloutStart,
    rollout_step: r.terms.rolloutStep,
    rollout_interval: r.terms.rolloutInterval.toString(),
    notes_cid: r.terms.notesCid,
    encoded,
    digest: keccak256(encoded),
  }
})
writeFileSync(join(here, '../record-vectors.json'), JSON.stringify(vectors, null, 2) + '\n')

// share(t) = min(10000, start + step * floor((t - installableAt) / interval)) once t >= installableAt.
const share = (start, step, interval, installableAt, t) => {
  if (t < installableAt) return 0n
  const steps = interval === 0n ? 0n : (t - installableAt) / interval
  const s = BigInt(start) + BigInt(step) * steps
  return s > 10000n ? 10000n : s
}
const shares = []
for (const [start, step, interval] of [[1000, 2000, 3600n], [2500, 2500, 600n], [10000, 0, 0n], [0, 1, 1n], [0, 10000, 86400n]]) {
  for (const dt of [0n, 1n, 599n, 600n, 3599n, 3600n, 7200n, 86400n, 10n ** 12n]) {
    const installableAt = 1800000000n
    shares.push({ start, step, interval: interval.toString(), installable_at: installableAt.toString(),
      time: (installableAt + dt).toString(), share: Number(share(start, step, interval, installableAt, installableAt + dt)) })
  }
}
shares.push({ start: 5000, step: 0, interval: '0', installable_at: '1800000000', time: '1799999999', share: 0 })

// A device's id is keccak256 of its configured name; its place in a rollout is the first 8 bytes of
// keccak256(id ‖ record digest), big-endian, as a fraction of 2^64; it is eligible while place * 10000 < share * 2^64.
const devices = Array.from({ length: 20 }, (_, i) => `device-${String(i + 1).padStart(2, '0')}`)
const digest = vectors[0].digest
const eligibility = devices.map((name) => {
  const id = keccak256(stringToHex(name))
  const h = keccak256(concat([id, digest]))
  const place = hexToBigInt(h.slice(0, 18))
  const eligibleFrom = (place * 10000n >> 64n) + 1n // the smallest share (bps) that includes the device
  return { name, id, place: place.toString(), min_share: Number(eligibleFrom) }
})
writeFileSync(join(here, '../rollout-vectors.json'), JSON.stringify({ digest, shares, eligibility }, null, 2) + '\n')
console.error(`wrote ${vectors.length} records, ${shares.length} shares, ${eligibility.length} devices`)
