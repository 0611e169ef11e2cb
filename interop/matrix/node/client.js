'use strict'
// The Node clients of the matrix, on rillrpc or on @grpc/grpc-js:
//   node client.js --impl rill|grpc-js --target HOST:PORT [--protocol grpc|grpc-web|connect]
//                  [--shape-rules zero,two,two-requests]
// runs the six checks of interop/matrix/README.md (or, with --shape-rules, those sub-checks
// of the shape_rules check instead), prints "PASS <check>" / "FAIL <check>: <why>" lines and
// exits 1 if any failed. --protocol (rillrpc only; default grpc) is what every call speaks,
// over HTTP/2 (h2c): the Channel's `protocol` option.
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { setTimeout: sleep } = require('node:timers/promises')
const { service, rill, grpc, UNARY_PAYLOAD, STREAM_SIZES, BURST_MESSAGES, BURST_SIZE, BIN_VALUE, CALL_TIMEOUT_MS, ERROR_MESSAGE, PROTOCOL_HEADER } = require('./echo')

const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
const impl = opt('--impl', 'rill')
const target = opt('--target')
const rules = opt('--shape-rules')
const protocol = opt('--protocol', 'grpc')

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

/**
 * Whether the server saw the protocol this client was told to speak (`get(key)`: the
 * response headers' values). Present, the header must name it; absent, this client must
 * speak gRPC: only the gRPC-only peers' servers omit it, and they answer nothing else. So a
 * row that speaks another protocol than its own fails against every server that answers it.
 */
function spoke (get) {
  const got = get(PROTOCOL_HEADER).map(String)
  if ((got.length === 1 && got[0] === protocol) || (got.length === 0 && protocol === 'grpc')) return []
  if (got.length === 0) {
    return [`the server sent no ${PROTOCOL_HEADER} header, but this client was told to speak ${protocol} ` +
      "(only the gRPC-only peers' servers send none, and they answer gRPC alone)"]
  }
  return [`the server saw ${PROTOCOL_HEADER} ${JSON.stringify(got)}, but this client was told to speak ${protocol}`]
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
  const client = r.makeClient(new r.Channel(`http://${target}`, { protocol }), service, { timeout: CALL_TIMEOUT_MS })
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
      const headers = list(await call.headers)
      const problems = [...echoed('headers', headers), ...echoed('trailers', list(await call.trailers)), ...spoke(headers)]
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
      const got = (k) => headers ? headers.get(k) : []
      const problems = [...echoed('headers', got), ...echoed('trailers', (k) => status.metadata.get(k)), ...spoke(got)]
      assert.ok(problems.length === 0, problems.join('; '))
    }
  }
}

// The grpc-go server's matrix.Rules (go/echo/rules.go): unary for the client, answered with
// zero, one and two response messages.
const RULES_ZERO = '/matrix.Rules/Zero'
const RULES_ONE = '/matrix.Rules/One'
const RULES_TWO = '/matrix.Rules/Two'
const PING_PONG = '/echo.TestService/PingPong'
const RULES_REQUEST = service.PingPong.requestSerialize({ payload: Buffer.from('rules') })
// A shorter deadline than the six checks': grpcio's and grpc-js's clients (information
// cells) wait for it on a unary call answered twice, and every one of them adds to the
// matrix's time. A rillrpc call here ends in milliseconds.
const RULES_TIMEOUT_MS = 3000
// The second request of two-requests comes this long after the first: a server that takes
// the first without waiting for the half-close (where a second one would show) has ended the
// call by then, so it fails every run, not only when both requests arrive together.
const REQUEST_GAP_MS = 50

// The two calls of shape_rules, each giving { code, text } (text: the message, or for OK how
// many responses came): a unary call, and two requests through a bidi call on PingPong (a
// unary one would refuse the second).
function rillRules () {
  const r = rill()
  const ch = new r.Channel(`http://${target}`, { protocol })
  return {
    async unary (path) {
      try {
        const reply = await ch.unary(path, RULES_REQUEST, { timeout: RULES_TIMEOUT_MS })
        return { code: 0, text: reply === undefined ? 'resolved with undefined' : 'responses: 1' }
      } catch (e) {
        return { code: e.code, text: e.details }
      }
    },
    async twoRequests () {
      const call = ch.bidi(PING_PONG, { timeout: RULES_TIMEOUT_MS })
      // Reading from the start: an end during the gap is then the loop's error below, not
      // an 'error' event nobody listens to.
      const it = call[Symbol.asyncIterator]()
      call.write(RULES_REQUEST)
      await sleep(REQUEST_GAP_MS)
      call.write(RULES_REQUEST)
      call.end()
      let n = 0
      try {
        while (!(await it.next()).done) n++
      } catch (e) {
        return { code: e.code, text: e.details }
      }
      const s = call.getStatus()
      return s.code !== 0 ? { code: s.code, text: s.details } : { code: 0, text: `responses: ${n}` }
    }
  }
}

function grpcJsRules () {
  const g = grpc()
  const client = new g.Client(target, g.credentials.createInsecure())
  const same = (b) => b
  const opts = () => ({ deadline: Date.now() + RULES_TIMEOUT_MS })
  return {
    unary (path) {
      return new Promise((resolve) => {
        client.makeUnaryRequest(path, same, same, RULES_REQUEST, new g.Metadata(), opts(), (e, reply) => resolve(e
          ? { code: e.code, text: e.details }
          : { code: 0, text: reply === undefined ? 'called back with undefined' : 'responses: 1' }))
      })
    },
    twoRequests () {
      let n = 0
      const call = client.makeBidiStreamRequest(PING_PONG, same, same, new g.Metadata(), opts())
      call.on('data', () => { n++ })
      call.on('error', () => {})
      // Every end arrives as 'status', after the data, errors included.
      const done = new Promise((resolve) => call.on('status', (s) =>
        resolve(s.code === 0 ? { code: 0, text: `responses: ${n}` } : { code: s.code, text: s.details })))
      call.write(RULES_REQUEST)
      return sleep(REQUEST_GAP_MS).then(() => {
        call.write(RULES_REQUEST)
        call.end()
        return done
      })
    }
  }
}

/** Runs the named shape_rules sub-checks; each prints the code it got (want 12). */
async function shapeRules (subs) {
  const calls = impl === 'rill' ? rillRules() : grpcJsRules()
  // One, answered by the rule, must succeed first: a server without the Rules service
  // answers UNIMPLEMENTED too, and must not pass for one that breaks the rule.
  const misbehaving = async (path) => {
    const one = await calls.unary(RULES_ONE)
    if (one.code !== 0) throw new Error(`the control call ${RULES_ONE}: code ${one.code} ${JSON.stringify(one.text)}`)
    return calls.unary(path)
  }
  const runs = {
    zero: () => misbehaving(RULES_ZERO),
    two: () => misbehaving(RULES_TWO),
    'two-requests': () => calls.twoRequests()
  }
  const bad = subs.filter((s) => !(s in runs))
  if (bad.length) {
    console.error(`client.js: unknown shape_rules sub-check(s) ${bad.join(', ')}`)
    process.exit(2)
  }
  let failed = 0
  for (const sub of subs) {
    let line
    let timer
    try {
      const { code, text } = await Promise.race([runs[sub](), new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error('no answer in time')), 2 * RULES_TIMEOUT_MS + 5000)
      })])
      const got = code === 0 ? `code 0 (${text})` : `code ${code} ${JSON.stringify(text)}`
      line = code === 12 ? `PASS shape_rules/${sub}: ${got}` : `FAIL shape_rules/${sub}: ${got}, want code 12`
    } catch (e) {
      line = `FAIL shape_rules/${sub}: ${String(e && e.message ? e.message : e).replace(/\n/g, ' ')}`
    } finally {
      clearTimeout(timer)
    }
    if (line.startsWith('FAIL')) failed++
    console.log(line)
  }
  process.exit(failed ? 1 : 0)
}

async function main () {
  if (!target) {
    console.error('usage: node client.js --impl rill|grpc-js --target HOST:PORT [--protocol grpc|grpc-web|connect] [--shape-rules zero,two,two-requests]')
    process.exit(2)
  }
  if (impl !== 'rill' && protocol !== 'grpc') {
    console.error(`--protocol ${protocol} needs --impl rill (grpc-js speaks gRPC)`)
    process.exit(2)
  }
  if (rules !== undefined) {
    if (impl !== 'rill' && impl !== 'grpc-js') {
      console.error(`--impl must be rill or grpc-js, not ${impl}`)
      process.exit(2)
    }
    return shapeRules(rules.split(',').filter(Boolean))
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
