'use strict'
// Builds the native addon from source with the machine's Rust toolchain: a plain
// `cargo build` of the addon crate (a cdylib) and a copy of the library to
// native/rillrpc.<platform>.node. Calling cargo directly instead of @napi-rs/cli keeps the
// package free of dependencies: the CLI pulled in ~100 packages, some wanting Node >= 22.
//
// As npm's install script it first looks for the prebuilt package of this platform
// (rillrpc-<platform>, an optional dependency) and builds only when that is absent.
// RILLRPC_BUILD=debug builds a debug addon (faster to compile, for tests); release
// otherwise. RILLRPC_FROM_SOURCE=1 builds even when a prebuilt addon is there.
// `--out DIR` puts the addon in DIR instead (the prebuilt package's pack step).
//
// The Rust source: in the repository, the workspace's bindings-node crate; in a packed
// tarball, crates/ (made by scripts/pack.js: the addon crate and the core, as cargo packages
// them).
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { platform } = require('../lib/platform')

const root = path.join(__dirname, '..')
const args = process.argv.slice(2)
const install = args.includes('--install')
const outIdx = args.indexOf('--out')
const outDir = outIdx >= 0 ? path.resolve(args[outIdx + 1]) : path.join(root, 'native')
const name = `rillrpc.${platform()}.node`

function fail (msg) {
  console.error(`rillrpc: ${msg}`)
  process.exit(1)
}

if (install && process.env.RILLRPC_FROM_SOURCE !== '1') {
  const pkg = `rillrpc-${platform()}`
  let prebuilt
  try {
    prebuilt = require.resolve(pkg, { paths: [root] })
  } catch (_) {}
  if (prebuilt) {
    console.log(`rillrpc: using the prebuilt addon of ${pkg}`)
    process.exit(0)
  }
}

if (spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status !== 0) {
  fail(`building the native addon needs a Rust toolchain (cargo on PATH; see https://rustup.rs), and there is no prebuilt rillrpc-${platform()}`)
}

const packed = path.join(root, 'crates', 'rillrpc-node', 'Cargo.toml')
const manifest = fs.existsSync(packed) ? packed : path.join(root, 'Cargo.toml')
const env = { ...process.env }
// An installed package's build directory is a gigabyte of intermediate files: unless the
// user chose a target directory, build in a scratch one and remove it afterwards.
let scratch
if (manifest === packed && !env.CARGO_TARGET_DIR) {
  scratch = path.join(root, 'crates', 'target')
  env.CARGO_TARGET_DIR = scratch
}
const cargoArgs = ['build', '--lib', '--manifest-path', manifest, '--message-format=json-render-diagnostics']
const debug = (env.RILLRPC_BUILD || 'release') === 'debug'
if (!debug) cargoArgs.push('--release')
// A debug build in the repository (the tests' addon) selects the workspace-hack crate too: its
// dependencies then have the features the other builds of `make test` use, and are built once
// (workspace-hack/Cargo.toml). A release build, and any build of an installed package, builds
// the addon alone, with the features it ships with.
if (debug && manifest !== packed) cargoArgs.push('-p', 'rillrpc-node', '-p', 'rill-workspace-hack')

// stdout carries cargo's JSON messages (where the library landed); progress goes to stderr.
const r = spawnSync('cargo', cargoArgs, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 })
if (r.status !== 0) fail(`cargo build failed (${manifest})`)
let lib
for (const line of r.stdout.toString().split('\n')) {
  if (!line.startsWith('{')) continue
  const m = JSON.parse(line)
  if (m.reason === 'compiler-artifact' && m.target.name === 'rillrpc_node') {
    lib = m.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || lib
  }
}
if (!lib) fail('cargo built no rillrpc_node library')

// Copy, then rename: a process that has the old addon loaded keeps a valid mapping.
fs.mkdirSync(outDir, { recursive: true })
const tmp = path.join(outDir, `.${name}.${process.pid}`)
fs.copyFileSync(lib, tmp)
fs.renameSync(tmp, path.join(outDir, name))
if (scratch) fs.rmSync(scratch, { recursive: true, force: true })
console.log(`rillrpc: built ${path.join(outDir, name)}`)
