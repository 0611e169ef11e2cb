'use strict'
// Builds the native addon from source with the machine's Rust toolchain (cargo), through
// @napi-rs/cli. Release by default; RILLRPC_BUILD=debug builds a debug addon (faster to
// compile, for tests). CARGO_TARGET_DIR is honoured.
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
const cli = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
const bin = path.join(path.dirname(cli), require(cli).bin.napi || require(cli).bin['napi'])
const args = [bin, 'build', '--platform', '--no-js', '--output-dir', 'native', '--dts', 'native.d.ts']
if ((process.env.RILLRPC_BUILD || 'release') !== 'debug') args.push('--release')

const cargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' })
if (cargo.status !== 0) {
  console.error('rillrpc: building the native addon needs a Rust toolchain (cargo); see https://rustup.rs')
  process.exit(1)
}
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
process.exit(r.status === null ? 1 : r.status)
