#!/usr/bin/env node
// A `solc` command over solc-js (npm `solc`), for tools that expect the native compiler (forge --use).
// Answers `--version` and `--standard-json` (input on stdin, output on stdout), as the native solc does.
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

const require = createRequire(import.meta.url)
const solc = require('solc')
const args = process.argv.slice(2)

if (args.includes('--version')) {
  console.log(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}`)
  process.exit(0)
}
if (!args.includes('--standard-json')) {
  console.error('solc.mjs supports only --version and --standard-json')
  process.exit(2)
}
const roots = [process.cwd()]
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path') roots.push(args[i + 1])
}
const findImports = (path) => {
  for (const root of roots) {
    try { return { contents: readFileSync(resolve(root, path), 'utf8') } } catch {}
  }
  return { error: `file not found: ${path}` }
}
const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
process.stdout.write(solc.compile(Buffer.concat(chunks).toString('utf8'), { import: findImports }))
