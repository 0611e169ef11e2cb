'use strict'
// The Node client of the matrix's thrift table, on rillrpc/thrift (thriftrw, the IDL loaded
// at run time from $RILL_SHARED/idl/echo.thrift):
//   node thrift_client.js --target HOST:PORT [--transport grpc|ttheader] [--check NAME[,NAME]]
// runs kitex-client's eight checks (interop/kitex/README.md: unary, server_streaming,
// client_streaming, bidi, error_status, metadata, cancel, deadline) against a server of echo.thrift with
// kitex-server's semantics, prints "PASS <check>" / "FAIL <check>: <why>" lines and exits 1
// if any failed. --transport is the Channel's protocol: `grpc` (Thrift over HTTP/2,
// application/grpc+thrift) or `ttheader` (TTHeader Streaming for the streams,
// TTHeader-framed PingPong for PingPong). The destination service is named `echo`, as
// Kitex's client names it (`authority`).
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')

const pkg = process.env.RILL_NODE_PKG || path.join(__dirname, '..', '..', '..', 'bindings-node')
const rill = require(pkg)
const thrift = require(path.join(pkg, 'thrift'))

function idlPath () {
  const shared = process.env.RILL_SHARED || path.join(__dirname, '..', '..', '..', '..', 'shared')
  const p = path.join(shared, 'idl', 'echo.thrift')
  if (!fs.existsSync(p)) throw new Error(`echo.thrift not found at ${p} (set RILL_SHARED)`)
  return p
}

const { TestService } = thrift.load(idlPath()).services
const { status } = rill

const TIMEOUT_MS = 20000 // every call's deadline, as kitex-client's
const UNARY_PAYLOADS = [Buffer.from('matrix\x00\xffping', 'latin1'), Buffer.alloc(0)]
const STREAM_SIZES = [1, 10, 100, 70000]
const ERROR_MESSAGE = 'matrix error: 100% ünïcødé ✓'
const ERROR_REQUEST = { payload: Buffer.from(ERROR_MESSAGE), count: -5 }
// kitex-client's metainfo, metainfo.WithValue(ctx, "ECHO_KEY", "value") and
// WithPersistentValue(ctx, "ECHO_PERSIST_KEY", "persist value"), in their gRPC form (the
// core writes them as RPC_TRANSIT_ECHO_KEY / RPC_PERSIST_ECHO_PERSIST_KEY over TTHeader).
const METAINFO = { 'rpc-transit-echo-key': 'value', 'rpc-persist-echo-persist-key': 'persist value' }

// The `deadline` check: a 300 ms deadline on calls the server is asked (payload
// `sleep:3000`, every server's slow path) to answer only after 3 s.
const SHORT_DEADLINE_MS = 300
const SLOW_REQUEST = { payload: Buffer.from('sleep:3000'), count: 1 }
const DEADLINE_LIMIT_MS = 2000 // a deadline error later than this is a failure: well before the 3 s
const HANG_MS = 5000 // how long each call of the check may run at all

const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
const target = opt('--target')
const transport = opt('--transport', 'grpc')

/** A response's payload; an unset one reads as empty (Kitex may leave an empty one out). */
const payload = (r) => (r && r.payload ? Buffer.from(r.payload) : Buffer.alloc(0))
const show = (b) => JSON.stringify(b.toString('latin1'))

/** Every message of a Readable, and the error that ended it (null at its end). */
async function drain (stream) {
  const got = []
  try {
    for await (const m of stream) got.push(m)
  } catch (err) {
    return { got, err }
  }
  return { got, err: null }
}

/** `err` must be kitex-server's biz status error for count -5. */
function wantBiz (what, err) {
  assert.ok(err, `${what}: no error`)
  assert.ok(err instanceof rill.BizStatusError,
    `${what}: ${err && err.constructor && err.constructor.name}: ${err && err.message}, not a biz status error`)
  const got = { code: err.bizCode, message: err.bizMessage, extra: { ...err.bizExtra } }
  assert.deepEqual(got, { code: 5, message: ERROR_MESSAGE, extra: { 'echo-count': '-5' } },
    `${what}: biz status ${JSON.stringify(got)}, want 5 ${JSON.stringify(ERROR_MESSAGE)} {"echo-count":"-5"}`)
  assert.equal(err.code, status.INTERNAL, `${what}: code ${err.code}, want INTERNAL`)
}

function hasMetainfo (what, md) {
  for (const [k, v] of Object.entries(METAINFO)) {
    let got = md ? md[k] : undefined
    if (Array.isArray(got)) got = got[0]
    assert.equal(got === undefined ? undefined : String(got), v, `${what}: ${k} = ${JSON.stringify(got)}, want ${JSON.stringify(v)} (got ${JSON.stringify(md)})`)
  }
}

const checks = {
  async unary (client) {
    for (const p of UNARY_PAYLOADS) {
      const r = await client.PingPong({ payload: p })
      assert.ok(payload(r).equals(p), `PingPong(${show(p)}) = ${show(payload(r))}`)
    }
  },

  async server_streaming (client) {
    const { got, err } = await drain(client.EchoServer({ payload: Buffer.from('stream'), count: 5 }))
    if (err) throw err
    const ps = got.map((m) => payload(m).toString())
    assert.deepEqual(ps, Array(5).fill('stream'), `EchoServer: ${JSON.stringify(ps)}, want 5 times "stream"`)
  },

  async client_streaming (client) {
    const call = client.EchoClient()
    for (const n of STREAM_SIZES) call.write({ payload: Buffer.alloc(n, 'c') })
    call.end()
    const r = await call.response
    assert.equal(payload(r).toString(), '70111', `EchoClient = ${show(payload(r))}, want "70111"`)
  },

  async bidi (client) {
    const call = client.Echo()
    const it = call[Symbol.asyncIterator]()
    for (let i = 0; i < 5; i++) {
      const want = `bidi-${i}`
      call.write({ payload: Buffer.from(want) })
      const { value, done } = await it.next()
      assert.equal(done, false, `Echo ended before the answer to ${want}`)
      assert.equal(payload(value).toString(), want, `Echo recv ${i} = ${show(payload(value))}, want ${want}`)
    }
    call.end()
    const last = await it.next()
    assert.equal(last.done, true, `Echo after end: ${JSON.stringify(last.value)}, want the end`)
  },

  async error_status (client) {
    // The error alone, on PingPong.
    let err = null
    try {
      const r = await client.PingPong(ERROR_REQUEST)
      assert.fail(`PingPong: no error, response ${show(payload(r))}`)
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e
      err = e
    }
    wantBiz('PingPong', err)
    // After an answered message, on Echo.
    const call = client.Echo()
    const it = call[Symbol.asyncIterator]()
    call.write({ payload: Buffer.from('bidi-0') })
    const first = await it.next()
    assert.ok(!first.done && payload(first.value).toString() === 'bidi-0', 'Echo: the first answer')
    call.write(ERROR_REQUEST)
    err = null
    try {
      const r = await it.next()
      assert.fail(`Echo: ${r.done ? 'the end' : show(payload(r.value))}, want the biz status error`)
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e
      err = e
    }
    wantBiz('Echo', err)
    // Ending a server stream with no message before it, on EchoServer.
    const { got, err: serr } = await drain(client.EchoServer(ERROR_REQUEST))
    wantBiz(`EchoServer (${got.length} responses)`, serr)
  },

  async metadata (client) {
    const p = client.PingPong({ payload: Buffer.from('meta') }, { metadata: METAINFO })
    const r = await p
    assert.equal(payload(r).toString(), 'meta', `PingPong = ${show(payload(r))}`)
    hasMetainfo('PingPong headers', await p.headers)
    hasMetainfo('PingPong trailers', await p.trailers)
    const s = client.EchoServer({ payload: Buffer.from('meta'), count: 1 }, { metadata: METAINFO })
    hasMetainfo('EchoServer headers', await s.headers)
    const { got, err } = await drain(s)
    if (err) throw err
    const ps = got.map((m) => payload(m).toString())
    assert.deepEqual(ps, ['meta'], `EchoServer: ${JSON.stringify(ps)}`)
    hasMetainfo('EchoServer trailers', await s.trailers)
  },

  async cancel (client) {
    const call = client.Echo()
    const it = call[Symbol.asyncIterator]()
    call.write({ payload: Buffer.from('cancel-0') })
    const first = await it.next()
    assert.ok(!first.done && payload(first.value).toString() === 'cancel-0', 'Echo: the first answer')
    call.cancel()
    let err = null
    try {
      const r = await it.next()
      assert.fail(`Echo after cancel: ${r.done ? 'the end' : show(payload(r.value))}, want CANCELLED`)
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e
      err = e
    }
    assert.equal(err.code, status.CANCELLED, `Echo after cancel: ${err.message}`)
    // As kitex-client: let the cancel reach the server, then the same channel must work.
    await sleep(100)
    const { got, err: serr } = await drain(client.EchoServer({ payload: Buffer.from('after-cancel'), count: 1 }))
    if (serr) throw serr
    const ps = got.map((m) => payload(m).toString())
    assert.deepEqual(ps, ['after-cancel'], `EchoServer after cancel: ${JSON.stringify(ps)}`)
  },

  // As kitex-client's: PingPong (gRPC's grpc-timeout, TTHeader's RPCTimeout), EchoServer
  // before its first response and Echo before its answer, each with SHORT_DEADLINE_MS, must
  // end DEADLINE_EXCEEDED well before the server answers; all three are tried, each bounded
  // by HANG_MS (then cancelled), and their failures reported together. Then the same
  // channel still works.
  async deadline (client) {
    const o = { timeout: SHORT_DEADLINE_MS }
    const calls = [
      ['PingPong', () => {
        const p = client.PingPong(SLOW_REQUEST, o)
        return { done: p.then(() => 1), cancel: () => p.cancel && p.cancel() }
      }],
      ['EchoServer', () => {
        const s = client.EchoServer(SLOW_REQUEST, o)
        return {
          done: drain(s).then(({ got, err }) => { if (err) throw err; return got.length }),
          cancel: () => s.cancel()
        }
      }],
      ['Echo', () => {
        const call = client.Echo(o)
        call.write(SLOW_REQUEST)
        return {
          done: call[Symbol.asyncIterator]().next().then((r) => (r.done ? 0 : 1)),
          cancel: () => call.cancel()
        }
      }]
    ]
    const failures = []
    for (const [what, start] of calls) {
      const t = Date.now()
      let c = null
      try {
        c = start()
        const n = await withinTime(c.done, HANG_MS)
        failures.push(`${what}: OK with ${n} responses after ${Date.now() - t} ms, want DEADLINE_EXCEEDED`)
      } catch (e) {
        const took = Date.now() - t
        if (e instanceof Hang) {
          c.done.catch(() => {})
          try { c.cancel() } catch (_) {}
          failures.push(`${what}: no end ${HANG_MS} ms after its ${SHORT_DEADLINE_MS} ms deadline (a hang)`)
        } else if (e.code !== status.DEADLINE_EXCEEDED || took > DEADLINE_LIMIT_MS) {
          failures.push(`${what}: ${e.constructor.name} code ${e.code}: ${e.message} after ${took} ms, ` +
            `want DEADLINE_EXCEEDED after about ${SHORT_DEADLINE_MS} ms`)
        } else {
          console.log(`NOTE deadline: ${what}: code ${e.code} (${e.message}) after ${took} ms`)
        }
      }
    }
    const p = client.PingPong({ payload: Buffer.from('after-deadline') })
    try {
      const r = await withinTime(p, HANG_MS)
      if (payload(r).toString() !== 'after-deadline') failures.push(`PingPong after the deadlines: ${show(payload(r))}`)
    } catch (e) {
      if (e instanceof Hang) {
        p.catch(() => {})
        failures.push(`PingPong after the deadlines: no answer in ${HANG_MS} ms`)
      } else {
        failures.push(`PingPong after the deadlines: ${e.constructor.name}: ${e.message}`)
      }
    }
    assert.ok(failures.length === 0, failures.join('; '))
  }
}

class Hang extends Error {}

/** The calls have their own deadlines; this only catches a hang. */
function withinTime (p, ms) {
  let t
  return Promise.race([p, new Promise((_resolve, reject) => {
    t = setTimeout(() => reject(new Hang(`no end within ${ms / 1000} s`)), ms)
  })]).finally(() => clearTimeout(t))
}

async function main () {
  if (!target || !['grpc', 'ttheader'].includes(transport)) {
    console.error('usage: node thrift_client.js --target HOST:PORT [--transport grpc|ttheader] [--check NAME[,NAME]]')
    process.exit(2)
  }
  const names = opt('--check') ? opt('--check').split(',') : Object.keys(checks)
  const channel = new rill.Channel(target, { protocol: transport, authority: 'echo' })
  const client = new thrift.Client(channel, TestService, { timeout: TIMEOUT_MS })
  let failed = false
  for (const name of names) {
    try {
      if (!checks[name]) throw new Error('no such check')
      await withinTime(checks[name](client), 3 * TIMEOUT_MS)
      console.log(`PASS ${name}`)
    } catch (e) {
      failed = true
      const why = e instanceof assert.AssertionError ? e.message.split('\n')[0] : `${e.constructor.name}: ${e.message}`
      console.log(`FAIL ${name}: ${why}`)
    }
  }
  channel.close()
  process.exitCode = failed ? 1 : 0
}

main().catch((e) => { console.log(`FAIL client: ${e.stack || e}`); process.exit(1) })
