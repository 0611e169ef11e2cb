'use strict'
// The Node rows of the bench, peer and ours in the same run:
// - clients: the grpc-js client and the rillrpc Node client against the same fast echo
//   server (`echo-server --impl tonic`);
// - servers: the grpc-js server and the rillrpc Node server (bench/node/server.js) driven by
//   the same fast client (`echo-client --impl rill`).
// Each cell runs `--rounds` times, the two implementations taking turns, and reports the
// median: on a shared machine, a single run of a latency-bound workload (ping-pong) swings
// by a quarter between runs minutes apart; interleaving keeps drift from favouring either.
// Server rows also give the server's CPU per operation (echo-client --server-pid): when the
// driving client sets the pace (ping-pong), the rate hides what a round trip costs the
// server. Prints a table with ratios.
// With --baseline DIR (another checkout's bindings-node, its release addon built by
// `npm install` there), that build runs as "rill before" in the same rounds, and the table
// adds its column and the ratio after/before: a change to the binding or the core measured
// in one run.
// Usage: node bench/node/bench.js [--duration S] [--rounds N] [--size N] [--baseline DIR]
// Needs `cargo build --release -p rill-bench --bin echo-server --bin echo-client` and
// `npm install` in bindings-node (a release addon).
const { spawn, spawnSync } = require('node:child_process')
const path = require('node:path')
const fs = require('node:fs')

const root = path.join(__dirname, '..', '..')
const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
const duration = opt('--duration', '3')
const rounds = Number(opt('--rounds', '5'))
const warmup = opt('--warmup', '1')
const size = opt('--size', '16')
const baseline = opt('--baseline', process.env.RILLRPC_NODE_BASELINE)
if (baseline && !fs.existsSync(path.join(baseline, 'package.json'))) {
  throw new Error(`--baseline ${baseline}: not a bindings-node directory`)
}
// Each implementation's label, and the flags that pick it in client.js and server.js.
const impls = { 'grpc-js': ['--impl', 'grpc-js'], rill: ['--impl', 'rill'] }
if (baseline) impls['rill before'] = ['--impl', 'rill', '--pkg', baseline]
const order = baseline ? ['grpc-js', 'rill before', 'rill'] : ['grpc-js', 'rill']
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target')
const bin = (name) => {
  const p = path.join(targetDir, 'release', name)
  if (!fs.existsSync(p)) throw new Error(`${p} not found: cargo build --release -p rill-bench --bin ${name}`)
  return p
}
const workloads = ['server-stream', 'pingpong', 'unary', 'unary-deadline']

function start (cmd, argv) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const m = /listening on (\S+)/.exec(out)
      if (m) resolve({ child, addr: m[1] })
    })
    child.on('exit', (c) => reject(new Error(`${cmd} exited with ${c}`)))
  })
}

/** The RESULT line's value, and its `server_cpu` (cores) when it has one. */
function measured (cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 120000 })
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT'))
  if (!line) return { value: NaN, cpu: NaN }
  const cpu = / server_cpu=(\S+)/.exec(line)
  return { value: Number(/ value=(\S+)/.exec(line)[1]), cpu: cpu ? Number(cpu[1]) : NaN }
}

function median (xs) {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}

/**
 * Runs `measure(impl)` `rounds` times per implementation, taking turns: the rates, and the
 * server's CPU per operation in µs (NaN without one), which the rate hides when the
 * driving client sets the pace.
 */
async function cell (measure) {
  const runs = Object.fromEntries(order.map((k) => [k, []]))
  const cpu = Object.fromEntries(order.map((k) => [k, []]))
  for (let i = 0; i < rounds; i++) {
    for (const impl of order) {
      const m = await measure(impl)
      runs[impl].push(m.value)
      cpu[impl].push(m.cpu / m.value * 1e6)
    }
  }
  return { runs, cpu }
}

async function main () {
  const rows = []
  // Clients against tonic.
  const tonic = await start(bin('echo-server'), ['--impl', 'tonic', '--port', '0'])
  for (const w of workloads) {
    const { runs, cpu } = await cell((impl) => measured(process.execPath, [path.join(__dirname, 'client.js'), ...impls[impl],
      '--addr', tonic.addr, '--workload', w, '--duration', duration, '--warmup', warmup, '--size', size]))
    rows.push({ side: 'client (vs tonic server)', workload: w, runs, cpu })
  }
  tonic.child.kill()
  // Servers driven by echo-client (rillrpc Rust client).
  for (const w of workloads) {
    const { runs, cpu } = await cell(async (impl) => {
      const srv = await start(process.execPath, [path.join(__dirname, 'server.js'), ...impls[impl], '--port', '0'])
      const v = measured(bin('echo-client'), ['--impl', 'rill', '--addr', srv.addr, '--workload', w,
        '--duration-secs', duration, '--warmup-secs', warmup, '--size', size, '--server-pid', String(srv.child.pid)])
      srv.child.kill()
      await new Promise((resolve) => srv.child.once('exit', resolve))
      return v
    })
    rows.push({ side: 'server (driven by echo-client)', workload: w, runs, cpu })
  }
  const fmt = (x) => Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a'
  const short = (xs) => xs.map((x) => Number.isFinite(x) ? (x >= 1e5 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(1)}k`) : 'n/a').join(' ')
  console.log(`\nNode bench: ${size} B messages; median of ${rounds} rounds per cell, the implementations taking turns, ${duration} s each after ${warmup} s warm-up (msg/s; ping-pong and unary are round trips/s, one call at a time)\n`)
  const us = (xs) => {
    const m = median(xs)
    return Number.isFinite(m) ? m.toFixed(m < 10 ? 2 : 1) : ''
  }
  const ratio = (a, b) => `${(a / b).toFixed(2)}x`
  const cols = baseline ? 'grpc-js | rillrpc before | rillrpc | rillrpc / grpc-js | after / before' : 'grpc-js | rillrpc | rillrpc / grpc-js'
  console.log(`| side | workload | ${cols} | server CPU µs/op: ${order.join('; ')} | rounds: ${order.join('; ')} |`)
  console.log(`|---|---|${'---:|'.repeat(baseline ? 5 : 3)}---|---|`)
  for (const r of rows) {
    const med = Object.fromEntries(order.map((k) => [k, median(r.runs[k])]))
    const vals = order.map((k) => fmt(med[k]))
    vals.push(ratio(med.rill, med['grpc-js']))
    if (baseline) vals.push(ratio(med.rill, med['rill before']))
    const cpu = Number.isFinite(median(r.cpu.rill)) ? order.map((k) => us(r.cpu[k])).join('; ') : ''
    console.log(`| ${r.side} | ${r.workload} | ${vals.join(' | ')} | ${cpu} | ${order.map((k) => short(r.runs[k])).join('; ')} |`)
  }
  if (baseline) console.log(`\nrillrpc before: ${path.resolve(baseline)}; rillrpc: ${path.join(root, 'bindings-node')}`)
}

main().catch((e) => { console.error(e); process.exit(1) })
