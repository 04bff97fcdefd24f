#!/usr/bin/env node
// Compiles src/FirmwareIndex.sol with solc-js and writes artifacts/FirmwareIndex.json (ABI, bytecode,
// deployed bytecode, storage layout). With --check, compiles and fails if the committed artifact differs.
import { createRequire } from 'node:module'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const solc = require('solc')
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const source = 'src/FirmwareIndex.sol'
const out = join(root, 'artifacts/FirmwareIndex.json')

const input = {
  language: 'Solidity',
  sources: { [source]: { content: readFileSync(join(root, source), 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: 10000 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none' },
    outputSelection: { '*': { FirmwareIndex: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'storageLayout'] } },
  },
}
const result = JSON.parse(solc.compile(JSON.stringify(input)))
const errors = (result.errors ?? []).filter((e) => e.severity === 'error')
for (const e of result.errors ?? []) console.error(e.formattedMessage)
if (errors.length) process.exit(1)
const c = result.contracts[source].FirmwareIndex
const layout = c.storageLayout.storage.map(({ label, slot, offset, type }) => ({ label, slot: Number(slot), offset, type }))
const artifact = {
  contractName: 'FirmwareIndex',
  compiler: `solc-js ${solc.version()}`,
  settings: input.settings,
  abi: c.abi,
  bytecode: { object: `0x${c.evm.bytecode.object}` },
  deployedBytecode: { object: `0x${c.evm.deployedBytecode.object}` },
  storageLayout: layout,
}
const text = JSON.stringify(artifact, null, 2) + '\n'
if (process.argv.includes('--check')) {
  let committed = ''
  try { committed = readFileSync(out, 'utf8') } catch {}
  if (committed !== text) {
    console.error(`${out} does not match a fresh compile of ${source}: run node contracts/tools/build.mjs and commit it`)
    process.exit(1)
  }
  console.error(`artifact matches a fresh compile (${solc.version()})`)
} else {
  writeFileSync(out, text)
  console.error(`wrote ${out} (${c.evm.deployedBytecode.object.length / 2} bytes deployed)`)
}
