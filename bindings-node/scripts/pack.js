'use strict'
// npm's prepack: puts the Rust source the tarball builds from into crates/, as cargo itself
// packages it (`cargo package`: workspace inheritance resolved, only the crate's own files):
//   crates/rillrpc       the core
//   crates/rillrpc-node  the addon, depending on ../rillrpc, a workspace of its own
// so an installed tarball needs nothing of the repository. `--clean` (postpack) removes it.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')
const crates = path.join(root, 'crates')

function fail (msg) {
  console.error(`rillrpc pack: ${msg}`)
  process.exit(1)
}

function run (cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...opts })
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed`)
  return r.stdout.toString()
}

fs.rmSync(crates, { recursive: true, force: true })
if (process.argv.includes('--clean')) process.exit(0)

const workspace = path.join(root, '..', 'Cargo.toml')
if (!fs.existsSync(workspace)) fail('pack from the rillrpc repository (its Cargo.toml workspace is not at ..)')
const meta = JSON.parse(run('cargo', ['metadata', '--format-version', '1', '--no-deps', '--manifest-path', workspace]))
const version = (name) => meta.packages.find((p) => p.name === name).version
// Both at once: the addon's dependency on the core then resolves to the core being packaged.
// --allow-dirty: the tarball carries the working tree, as npm pack does for the JS files.
run('cargo', ['package', '--no-verify', '--allow-dirty', '--quiet', '-p', 'rillrpc', '-p', 'rillrpc-node', '--manifest-path', workspace])

fs.mkdirSync(crates)
for (const name of ['rillrpc', 'rillrpc-node']) {
  const file = path.join(meta.target_directory, 'package', `${name}-${version(name)}.crate`)
  run('tar', ['-xzf', file, '-C', crates])
  fs.renameSync(path.join(crates, `${name}-${version(name)}`), path.join(crates, name))
}

const manifest = path.join(crates, 'rillrpc-node', 'Cargo.toml')
let toml = fs.readFileSync(manifest, 'utf8')
const dep = /\[dependencies\.rillrpc\]\n/
if (!dep.test(toml)) fail(`no [dependencies.rillrpc] in ${manifest}`)
toml = toml.replace(dep, '$&path = "../rillrpc"\n')
// Its own workspace (a Cargo workspace above node_modules must not claim it), with the
// repository's release profile.
toml += '\n[workspace]\n\n[profile.release]\nlto = "thin"\ncodegen-units = 4\n'
fs.writeFileSync(manifest, toml)
