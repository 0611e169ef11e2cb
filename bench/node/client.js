'use strict'
// An echo client on @grpc/grpc-js or on rillrpc, for the bench:
//   node client.js --impl grpc-js|rill --addr HOST:PORT --workload server-stream|pingpong|unary|unary-deadline
//                  [--duration S] [--warmup S] [--size N] [--pkg BINDINGS_NODE_DIR]
// prints one line: RESULT workload=W impl=I value=RATE unit=msg/s
// Both send pre-encoded Buffers and count replies without decoding them.
const path = require('node:path')
const { encodeRequest } = require('./codec')

const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
// The rillrpc package (its built addon) to run: another build's with --pkg (bench.js
// --baseline). grpc-js always comes from this tree's bindings-node.
const here = path.join(__dirname, '..', '..', 'bindings-node')
const pkg = path.resolve(opt('--pkg', here))
const impl = opt('--impl', 'rill')
const addr = opt('--addr')
const workload = opt('--workload', 'server-stream')
const duration = Number(opt('--duration', '5')) * 1000
const warmup = Number(opt('--warmup', '1')) * 1000
const size = Number(opt('--size', '16'))
const M = '/echo.TestService/'
const payload = Buffer.alloc(size, 7)

let client
let ch
if (impl === 'grpc-js') {
  const grpc = require(require.resolve('@grpc/grpc-js', { paths: [here] }))
  client = new grpc.Client(addr, grpc.credentials.createInsecure())
} else {
  const rill = require(pkg)
  ch = new rill.Channel(`http://${addr}`)
}
const id = (x) => x

/** Counts events; the rate is taken over `duration` after `warmup`. */
function measure (start) {
  let n = 0
  let base = 0
  const tick = () => { n++ }
  const done = new Promise((resolve) => {
    setTimeout(() => {
      base = n
      const t0 = process.hrtime.bigint()
      setTimeout(() => {
        const secs = Number(process.hrtime.bigint() - t0) / 1e9
        resolve((n - base) / secs)
      }, duration)
    }, warmup)
  })
  start(tick)
  return done
}

function serverStream (tick) {
  const req = encodeRequest(payload, 2147483647)
  const s = impl === 'grpc-js'
    ? client.makeServerStreamRequest(M + 'EchoServer', id, id, req)
    : ch.serverStreaming(M + 'EchoServer', req)
  s.on('data', tick)
  s.on('error', () => {})
}

function pingpong (tick) {
  const req = encodeRequest(payload)
  const s = impl === 'grpc-js' ? client.makeBidiStreamRequest(M + 'Echo', id, id) : ch.bidi(M + 'Echo')
  s.on('data', () => { tick(); s.write(req) })
  s.on('error', () => {})
  s.write(req)
}

// `deadlineMs`: each call's deadline, that many milliseconds on (never reached, only set).
function unary (tick, deadlineMs) {
  const req = encodeRequest(payload)
  const grpcJsOptions = () => deadlineMs ? { deadline: Date.now() + deadlineMs } : {}
  const rillOptions = deadlineMs ? { timeout: deadlineMs } : undefined
  const one = impl === 'grpc-js'
    ? () => new Promise((resolve, reject) => client.makeUnaryRequest(M + 'PingPong', id, id, req, grpcJsOptions(), (e, r) => e ? reject(e) : resolve(r)))
    : () => ch.unary(M + 'PingPong', req, rillOptions)
  ;(async () => { for (;;) { await one(); tick() } })()
}

const run = {
  'server-stream': serverStream,
  pingpong,
  unary,
  'unary-deadline': (tick) => unary(tick, 10000)
}[workload]
if (!run) throw new Error(`unknown workload ${workload}`)
measure(run).then((rate) => {
  console.log(`RESULT workload=${workload} impl=${impl} value=${rate.toFixed(0)} unit=msg/s size=${size}`)
  process.exit(0)
})
