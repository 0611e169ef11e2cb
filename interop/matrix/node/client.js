'use strict'
// The Node clients of the matrix, on rillrpc or on @grpc/grpc-js:
//   node client.js --impl rill|grpc-js --target HOST:PORT
// runs the six checks of interop/matrix/README.md, prints "PASS <check>" / "FAIL <check>:
// <why>" lines and exits 1 if any failed.
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { service, rill, grpc, UNARY_PAYLOAD, STREAM_SIZES, BURST_MESSAGES, BURST_SIZE, BIN_VALUE, CALL_TIMEOUT_MS, ERROR_MESSAGE } = require('./echo')

const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
const impl = opt('--impl', 'rill')
const target = opt('--target')

/** What is wrong with the echoed entries of `get(key)` (a list of values). */
function echoed (where, get) {
  const problems = []
  const key = get('echo-key')
  if (key.length !== 1 || String(key[0]) !== 'value') problems.push(`${where} echo-key = ${JSON.stringify(key)}`)
  const bin = get('echo-bin-bin')
  if (bin.length !== 1 || !Buffer.isBuffer(bin[0]) || !bin[0].equals(BIN_VALUE)) {
    problems.push(`${where} echo-bin-bin = ${JSON.stringify(bin)}`)
  }
  return problems
}

const wanted = (what) => (e) => {
  assert.equal(e.code, 5, `${what}: code ${e.code} ${e.details}`)
  assert.equal(e.details, ERROR_MESSAGE, what)
  return true
}

/** The error on a bidi call after one answered message (status after data). */
async function bidiError (call) {
  const it = call[Symbol.asyncIterator]()
  call.write({ payload: Buffer.from('before') })
  const r = await it.next()
  assert.ok(!r.done && Buffer.from(r.value.payload).toString() === 'before', 'bidi: first answer')
  call.write({ payload: Buffer.from(ERROR_MESSAGE), count: -5 })
  await assert.rejects(it.next(), wanted('bidi'))
}

/**
 * The client_streaming burst on any Writable of echo requests: as a Node stream user writes,
 * until write() says false, then 'drain'. `response` settles with the server's reply.
 */
async function burst (call, response) {
  const m = { payload: Buffer.alloc(BURST_SIZE, 'x') }
  let failed
  const res = response.catch((e) => { failed = e; throw e })
  for (let i = 0; i < BURST_MESSAGES && !failed; i++) {
    if (!call.write(m)) await Promise.race([once(call, 'drain'), res.catch(() => {})])
  }
  call.end()
  let r
  try {
    r = await res
  } catch (e) {
    throw new Error(`burst of ${BURST_MESSAGES}: code ${e.code} ${e.details || e.message}`)
  }
  assert.equal(Buffer.from(r.payload).toString(), String(BURST_MESSAGES * BURST_SIZE), 'burst: total')
}

/** Bidi, send one then read one, on any Duplex of echo messages. */
async function bidiRounds (call) {
  const it = call[Symbol.asyncIterator]()
  for (let i = 0; i < 5; i++) {
    const p = Buffer.from(`bidi-${i}`)
    call.write({ payload: p })
    const r = await it.next()
    assert.ok(!r.done, `round ${i}: the call ended`)
    assert.ok(Buffer.from(r.value.payload).equals(p), `round ${i}: payload ${r.value.payload}`)
  }
  call.end()
  const r = await it.next()
  assert.ok(r.done, 'an extra message after half-close')
}

function rillChecks () {
  const r = rill()
  const client = r.makeClient(new r.Channel(`http://${target}`), service, { timeout: CALL_TIMEOUT_MS })
  const list = (md) => (k) => md[k] === undefined ? [] : [].concat(md[k])
  return {
    async unary () {
      // The empty request is a zero-length message, and so is its response.
      for (const p of [UNARY_PAYLOAD, Buffer.alloc(0)]) {
        const res = await client.PingPong({ payload: p })
        assert.ok(Buffer.from(res.payload).equals(p), `payload ${res.payload.toString('hex')}, want ${p.toString('hex')}`)
      }
    },
    async server_streaming () {
      const call = client.EchoServer({ payload: Buffer.from('stream'), count: 5 })
      const got = []
      for await (const m of call) got.push(Buffer.from(m.payload).toString())
      assert.deepEqual(got, Array(5).fill('stream'))
      assert.equal(call.getStatus()?.code, 0, `status ${JSON.stringify(call.getStatus())}`)
    },
    async client_streaming () {
      const call = client.EchoClient()
      for (const n of STREAM_SIZES) call.write({ payload: Buffer.alloc(n, 'x') })
      call.end()
      const res = await call.response
      const want = String(STREAM_SIZES.reduce((a, b) => a + b))
      assert.equal(Buffer.from(res.payload).toString(), want)
      const b = client.EchoClient()
      await burst(b, b.response)
    },
    async bidi () {
      const call = client.Echo()
      await bidiRounds(call)
      assert.equal(call.getStatus()?.code, 0, `status ${JSON.stringify(call.getStatus())}`)
    },
    async error_status () {
      // Unary: the status comes alone (trailers-only); bidi: after an answered message.
      await assert.rejects(client.PingPong({ payload: Buffer.from(ERROR_MESSAGE), count: -5 }), wanted('unary'))
      await bidiError(client.Echo())
    },
    async metadata () {
      const call = client.PingPong({ payload: Buffer.from('md') }, { metadata: { 'echo-key': 'value', 'echo-bin-bin': BIN_VALUE } })
      const res = await call
      assert.equal(Buffer.from(res.payload).toString(), 'md')
      const problems = [...echoed('headers', list(await call.headers)), ...echoed('trailers', list(await call.trailers))]
      assert.ok(problems.length === 0, problems.join('; '))
    }
  }
}

function grpcJsChecks () {
  const g = grpc()
  const Client = g.makeGenericClientConstructor(service, 'TestService')
  const client = new Client(target, g.credentials.createInsecure())
  const opts = () => ({ deadline: Date.now() + CALL_TIMEOUT_MS })
  const unary = (req, md = new g.Metadata()) => new Promise((resolve, reject) => {
    const out = {}
    const call = client.PingPong(req, md, opts(), (e, r) => { out.res = r; out.err = e })
    call.on('metadata', (h) => { out.headers = h })
    call.on('status', (s) => { out.status = s; out.err ? reject(Object.assign(out.err, out)) : resolve(out) })
  })
  return {
    async unary () {
      for (const p of [UNARY_PAYLOAD, Buffer.alloc(0)]) {
        const { res } = await unary({ payload: p })
        assert.ok(Buffer.from(res.payload).equals(p), `payload ${res.payload.toString('hex')}, want ${p.toString('hex')}`)
      }
    },
    async server_streaming () {
      const call = client.EchoServer({ payload: Buffer.from('stream'), count: 5 }, opts())
      const status = once(call, 'status')
      const got = []
      for await (const m of call) got.push(Buffer.from(m.payload).toString())
      assert.deepEqual(got, Array(5).fill('stream'))
      assert.equal((await status)[0].code, 0)
    },
    async client_streaming () {
      const res = await new Promise((resolve, reject) => {
        const call = client.EchoClient(opts(), (e, r) => e ? reject(e) : resolve(r))
        for (const n of STREAM_SIZES) call.write({ payload: Buffer.alloc(n, 'x') })
        call.end()
      })
      const want = String(STREAM_SIZES.reduce((a, b) => a + b))
      assert.equal(Buffer.from(res.payload).toString(), want)
      let call
      const response = new Promise((resolve, reject) => {
        call = client.EchoClient(opts(), (e, r) => e ? reject(e) : resolve(r))
      })
      await burst(call, response)
    },
    async bidi () {
      const call = client.Echo(opts())
      const status = once(call, 'status')
      await bidiRounds(call)
      assert.equal((await status)[0].code, 0)
    },
    async error_status () {
      await assert.rejects(unary({ payload: Buffer.from(ERROR_MESSAGE), count: -5 }), wanted('unary'))
      await bidiError(client.Echo(opts()))
    },
    async metadata () {
      const md = new g.Metadata()
      md.add('echo-key', 'value')
      md.add('echo-bin-bin', BIN_VALUE)
      const { res, headers, status } = await unary({ payload: Buffer.from('md') }, md)
      assert.equal(Buffer.from(res.payload).toString(), 'md')
      const problems = [...echoed('headers', (k) => headers ? headers.get(k) : []),
        ...echoed('trailers', (k) => status.metadata.get(k))]
      assert.ok(problems.length === 0, problems.join('; '))
    }
  }
}

async function main () {
  if (!target) {
    console.error('usage: node client.js --impl rill|grpc-js --target HOST:PORT')
    process.exit(2)
  }
  let checks
  if (impl === 'rill') checks = rillChecks()
  else if (impl === 'grpc-js') checks = grpcJsChecks()
  else {
    console.error(`--impl must be rill or grpc-js, not ${impl}`)
    process.exit(2)
  }
  let failed = 0
  for (const [name, check] of Object.entries(checks)) {
    let timer
    try {
      // A hung peer fails its check instead of the whole run.
      await Promise.race([check(), new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error('no answer in time')), CALL_TIMEOUT_MS + 5000)
      })])
      console.log(`PASS ${name}`)
    } catch (e) {
      failed++
      console.log(`FAIL ${name}: ${String(e && e.message ? e.message : e).replace(/\n/g, ' ')}`)
    } finally {
      clearTimeout(timer)
    }
  }
  process.exit(failed ? 1 : 0)
}

main()
