'use strict'
// The Node part of `make soak` (issue 16): a million calls through the binding, and what
// the process holds before and after.
//
//   node --expose-gc soak/node/soak.js --server target/release/echo-server --pkg DIR
//        [--calls 1000000] [--workers 64] [--warmup 50000] [--summary FILE]
//
// Runs rill-bench's echo-server in a process of its own and calls it from --workers async
// loops over two channels (gRPC and Connect): mostly unary calls, and every few hundred a
// stream of each shape, an error asked for (the echo service's `count < 0`), a stream
// cancelled midway and one left to miss its deadline; each must end with the status it
// asked for. RSS (after global.gc()), active resources (process.getActiveResourcesInfo()),
// open fds and threads are taken before the first call, after --warmup calls and at the
// end, each time with no call in flight; the run fails if resources or fds grew after the
// warm-up, or RSS by more than 20% + 16 MiB. --pkg: the rillrpc package to load
// (mk/soak.mk's copy with a release addon).
const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const readline = require('node:readline')
const { encodeRequest } = require('../../bench/node/codec')

const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
const server = opt('--server')
const pkg = path.resolve(opt('--pkg', path.join(__dirname, '..', '..', 'bindings-node')))
const calls = Number(opt('--calls', '1000000'))
const workers = Number(opt('--workers', '64'))
const warmup = Math.min(Number(opt('--warmup', '50000')), calls)
const summary = opt('--summary')
if (!server) throw new Error('--server ECHO_SERVER is needed')
if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc')
const rill = require(pkg)
const { status } = rill

const M = '/echo.TestService/'
const ENDLESS = 2147483647
const MIB = 1024 * 1024
const RSS_SLACK = 0.2
const RSS_SLACK_BYTES = 16 * MIB

// echo.proto by hand, as the bench's Node clients encode it: the soak measures the
// binding, not a protobuf library.
const request = encodeRequest

function payloadOf (resp) {
  if (resp.length === 0) return Buffer.alloc(0)
  if (resp[0] !== 0x0a) throw new Wrong(`not an echo.Response: ${resp.subarray(0, 8).toString('hex')}`)
  let n = 0
  let shift = 0
  let i = 1
  for (;;) {
    const b = resp[i++]
    n += (b & 0x7f) * 2 ** shift
    if (!(b & 0x80)) break
    shift += 7
  }
  return resp.subarray(i, i + n)
}

/** An answer the echo service would not give. */
class Wrong extends Error {}

function expect (got, want) {
  if (!payloadOf(got).equals(want)) throw new Wrong(`echoed ${payloadOf(got).length} bytes, sent ${want.length}`)
}

// ------------------------------------------------------------------ the calls
// Each resolves (OK) or rejects with the call's RpcError; the worker checks the status is
// the one the call asked for (WANT).

async function unary (ch, p) {
  expect(await ch.unary(M + 'PingPong', request(p)), p)
}

async function unaryError (ch, p) {
  await ch.unary(M + 'PingPong', request(p, -status.NOT_FOUND))
}

async function serverStream (ch, p) {
  let n = 0
  for await (const m of ch.serverStreaming(M + 'EchoServer', request(p, 3))) {
    expect(m, p)
    n++
  }
  if (n !== 3) throw new Wrong(`server stream: ${n} messages, asked for 3`)
}

async function clientStream (ch, p) {
  const w = ch.clientStreaming(M + 'EchoClient')
  for (let i = 0; i < 3; i++) w.write(request(p))
  w.end()
  const total = payloadOf(await w.response).toString()
  if (total !== String(3 * p.length)) throw new Wrong(`client stream: total ${total}, sent ${3 * p.length}`)
}

async function bidi (ch, p) {
  const s = ch.bidi(M + 'Echo')
  const it = s[Symbol.asyncIterator]()
  for (let i = 0; i < 3; i++) {
    s.write(request(p))
    const r = await it.next()
    if (r.done) throw new Wrong('bidi: ended before its echo')
    expect(r.value, p)
  }
  s.end()
  if (!(await it.next()).done) throw new Wrong('bidi: a message past the end')
}

async function cancelled (ch, p) {
  const s = ch.serverStreaming(M + 'EchoServer', request(p, ENDLESS))
  for await (const m of s) {
    expect(m, p)
    s.cancel()
  }
}

async function pastDeadline (ch, p) {
  const s = ch.bidi(M + 'Echo', { timeout: 50 })
  s.write(request(p))
  // Never ended (half-closed): only the deadline ends it.
  for await (const m of s) expect(m, p)
}

// One slot of a thousand each for the rare ones; unary calls take the rest.
const MIX = [
  ['server-stream', serverStream, 10],
  ['client-stream', clientStream, 10],
  ['bidi', bidi, 10],
  ['unary error', unaryError, 10],
  ['cancel', cancelled, 4],
  ['deadline', pastDeadline, 1]
]
const KINDS = [['unary', unary], ...MIX.map(([k, f]) => [k, f])]
const PLAN = []
MIX.forEach(([, , n], k) => { for (let i = 0; i < n; i++) PLAN.push(k + 1) })
while (PLAN.length < 1000) PLAN.push(0)
const WANT = { 'unary error': 'NOT_FOUND', cancel: 'CANCELLED', deadline: 'DEADLINE_EXCEEDED' }
const CODE_NAMES = Object.fromEntries(Object.entries(status).map(([k, v]) => [v, k]))

const counts = { next: 0, by: new Map(), unexpected: [] }

async function worker (chans, until) {
  while (counts.next < until) {
    const i = counts.next++
    const [name, fn] = KINDS[PLAN[(i * 7919) % 1000]]
    const want = WANT[name] || 'OK'
    const p = Buffer.alloc(1 + i % 64, 'p')
    let got
    try {
      await fn(chans[i % chans.length], p)
      got = 'OK'
    } catch (e) {
      got = e instanceof Wrong || typeof e.code !== 'number' ? `wrong (${e.message})` : CODE_NAMES[e.code]
    }
    const key = `${name}\t${got}`
    counts.by.set(key, (counts.by.get(key) || 0) + 1)
    if (got !== want && counts.unexpected.length < 10) counts.unexpected.push(`${name}: ${got}, wanted ${want}`)
  }
}

// ------------------------------------------------------------------ measuring

function proc (pid = 'self') {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (k) => Number(st.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm'))[1])
  return { rss: field('VmRSS') * 1024, threads: field('Threads'), fds: fs.readdirSync(`/proc/${pid}/fd`).length }
}

async function snapshot (serverPid) {
  // Lets closed calls' callbacks run before counting what is left.
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
  global.gc()
  const p = proc()
  // An Immediate is the loop's next turn, not something held.
  const resources = process.getActiveResourcesInfo().filter((r) => r !== 'Immediate')
  return {
    rss: process.memoryUsage().rss,
    heap: process.memoryUsage().heapUsed,
    resources: resources.length,
    kinds: resources.join(','),
    fds: p.fds,
    threads: p.threads,
    serverRss: proc(serverPid).rss
  }
}

const pad = (v, n) => String(v).padStart(n)

function row (label, n, rate, s) {
  console.log(`${label.padEnd(14)} ${pad(n, 9)} ${pad(rate === null ? '' : rate.toFixed(0), 9)} ${pad((s.rss / MIB).toFixed(1), 9)} ${pad((s.heap / MIB).toFixed(1), 8)} ${pad(s.resources, 9)} ${pad(s.fds, 5)} ${pad(s.threads, 8)} ${pad((s.serverRss / MIB).toFixed(1), 9)}`)
}

async function run (addr, serverPid) {
  const chans = [new rill.Channel(`http://${addr}`), new rill.Channel(`http://${addr}`, { protocol: 'connect' })]
  console.log(`${''.padEnd(14)} ${pad('calls', 9)} ${pad('calls/s', 9)} ${pad('RSS MiB', 9)} ${pad('heap MiB', 8)} ${pad('resources', 9)} ${pad('fds', 5)} ${pad('threads', 8)} ${pad('srv MiB', 9)}`)
  const start = await snapshot(serverPid)
  row('start', 0, null, start)
  const t0 = performance.now()
  let warm
  // Steps of a tenth of the run, each awaited whole: between them no call is in flight.
  const marks = [...new Set([warmup, ...Array.from({ length: 10 }, (_, k) => Math.floor(calls * (k + 1) / 10))])].sort((a, b) => a - b)
  let done = 0
  let end = start
  for (const m of marks) {
    const t = performance.now()
    await Promise.all(Array.from({ length: workers }, () => worker(chans, m)))
    end = await snapshot(serverPid)
    row(m === warmup ? 'warm-up' : '', m, (m - done) / ((performance.now() - t) / 1000), end)
    done = m
    if (m === warmup) warm = end
  }
  const secs = (performance.now() - t0) / 1000
  for (const ch of chans) ch.close()

  console.log('\ncalls by kind (status: count)')
  let total = 0
  let unexpected = 0
  for (const [key, n] of [...counts.by].sort()) {
    const [kind, got] = key.split('\t')
    console.log(`  ${kind.padEnd(14)} ${got}: ${n}`)
    total += n
    if (got !== (WANT[kind] || 'OK')) unexpected += n
  }
  for (const u of counts.unexpected) console.log(`  unexpected: ${u}`)
  console.log(`\n${total} calls in ${secs.toFixed(1)} s (${(total / secs).toFixed(0)}/s) from ${workers} workers`)
  console.log(`active resources after the warm-up: [${warm.kinds}]; at the end: [${end.kinds}]`)

  const bound = Math.floor(warm.rss * (1 + RSS_SLACK)) + RSS_SLACK_BYTES
  const failures = []
  if (unexpected) failures.push(`${unexpected} calls ended with a status they did not ask for`)
  if (total !== calls) failures.push(`${total} calls made, not ${calls}`)
  if (end.resources > warm.resources) failures.push(`active resources grew: ${warm.resources} after the warm-up, ${end.resources} at the end`)
  if (end.fds > warm.fds) failures.push(`fds grew: ${warm.fds} after the warm-up, ${end.fds} at the end`)
  if (end.rss > bound) failures.push(`RSS grew: ${(warm.rss / MIB).toFixed(1)} MiB after the warm-up, ${(end.rss / MIB).toFixed(1)} at the end (bound ${(bound / MIB).toFixed(1)})`)
  for (const f of failures) console.log(`soak.js: FAIL: ${f}`)
  if (summary) {
    fs.appendFileSync(summary, `node    ${pad(total, 9)} calls (${(total / secs).toFixed(0)}/s, ${unexpected} unexpected)  ` +
      `RSS ${(warm.rss / MIB).toFixed(1)} -> ${(end.rss / MIB).toFixed(1)} MiB, resources ${warm.resources} -> ${end.resources}, ` +
      `fds ${warm.fds} -> ${end.fds}, threads ${warm.threads} -> ${end.threads}  ${failures.length ? 'FAIL' : 'ok'}\n`)
  }
  return failures.length === 0
}

async function main () {
  const child = spawn(server, ['--impl', 'rill', '--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: child.stdout })
  const first = await new Promise((resolve) => lines.once('line', resolve))
  if (!first.startsWith('listening on ')) throw new Error(`${server} said ${first}`)
  let ok = false
  try {
    ok = await run(first.split(' ').pop(), child.pid)
  } finally {
    child.kill('SIGKILL')
  }
  process.exit(ok ? 0 : 1)
}

main().catch((e) => { console.error(e); process.exit(1) })
