'use strict'
// Connect's GET from Node: `makeClient` reads each method's `idempotency_level` from its
// @grpc/proto-loader definition, so on a channel with `httpGet` a method marked
// NO_SIDE_EFFECTS goes as an HTTP GET, and a server registered from that definition
// (`addService`) answers GET for it, with no user code; raw calls and methods name the level
// (`idempotency: 'no-side-effects'`). Over HTTP/2 and HTTP/1.1, checked against the Node
// server, GETs written with node:http, and a bare node:http server that reads the client's
// request line.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const path = require('node:path')
const protoLoader = require('@grpc/proto-loader')
const rill = require('..')

const pkg = protoLoader.loadSync(path.join(__dirname, 'fixtures', 'lookup.proto'), { keepCase: true, defaults: true })
const LOOKUP = pkg['rill.test.Lookup']
const GET = '/rill.test.Lookup/Get' // option idempotency_level = NO_SIDE_EFFECTS
const TOUCH = '/rill.test.Lookup/Touch' // IDEMPOTENT
const PUT = '/rill.test.Lookup/Put' // nothing said
const encKey = (o) => LOOKUP.Get.requestSerialize(o)
const decValue = (b) => LOOKUP.Get.responseDeserialize(b)
const HTTP_VERSIONS = ['http2', 'http1']
const NAMES = "use one of 'unknown', 'no-side-effects', 'idempotent'"

/** The servicer: each method says who answered, and notes how the call came. */
function lookupImpl (seen) {
  const note = (call) => seen.push([call.method, call.protocol, call.codec])
  return {
    Get (call) { note(call); return { text: `got ${call.request.name}` } },
    Touch (call) { note(call); return { text: `touched ${call.request.name}` } },
    Put (call) { note(call); return { text: `put ${call.request.name}` } }
  }
}

const seen = []
let lookup // the service registered from its definition: Get answers GET
let plain // the same handlers without an idempotency: every method refuses GET
let lookupTarget
let plainTarget

before(() => {
  lookup = new rill.Server()
  lookup.addService(LOOKUP, lookupImpl(seen))
  lookupTarget = `http://127.0.0.1:${lookup.listen('127.0.0.1:0')}`
  plain = new rill.Server()
  const impl = lookupImpl([])
  for (const name of Object.keys(LOOKUP)) {
    const m = LOOKUP[name]
    plain.unary(m.path, impl[name], { serialize: m.responseSerialize, deserialize: m.requestDeserialize })
  }
  plainTarget = `http://127.0.0.1:${plain.listen('127.0.0.1:0')}`
})

after(async () => {
  await lookup.close()
  await plain.close()
})

// A GET refused with 405: a status other than 200 with no Connect error in it is UNKNOWN,
// as connect-go says.
const refused = (e) => e instanceof rill.RpcError && e.code === rill.status.UNKNOWN && /405/.test(e.details)

for (const httpVersion of HTTP_VERSIONS) {
  test(`makeClient sends GET for what its definition marks, ${httpVersion}`, async () => {
    seen.length = 0
    let ch = new rill.Channel(lookupTarget, { protocol: 'connect', httpVersion, httpGet: true })
    assert.equal(ch.httpGet, true)
    let client = rill.makeClient(ch, LOOKUP)
    try {
      assert.equal((await client.Get({ name: 'a' })).text, 'got a')
      assert.equal((await client.Touch({ name: 'b' })).text, 'touched b')
      assert.equal((await client.Put({ name: 'c' })).text, 'put c')
      assert.deepEqual(seen, [[GET, 'connect', 'proto'], [TOUCH, 'connect', 'proto'], [PUT, 'connect', 'proto']])
    } finally {
      ch.close()
    }

    // Against the server that allows no GET: Get fails (405 before any handler), so it was
    // a GET; the others POST, and are served. A call may name its own level.
    ch = new rill.Channel(plainTarget, { protocol: 'connect', httpVersion, httpGet: true })
    client = rill.makeClient(ch, LOOKUP)
    try {
      await assert.rejects(client.Get({ name: 'a' }), refused)
      assert.equal((await client.Touch({ name: 'b' })).text, 'touched b')
      assert.equal((await client.Put({ name: 'c' })).text, 'put c')
      assert.equal((await client.Get({ name: 'd' }, { idempotency: 'unknown' })).text, 'got d')
      // A definition holding protobuf's number, as one made from a descriptor set may.
      const byNumber = rill.makeClient(ch, { Get: { ...LOOKUP.Get, options: { idempotency_level: 1 } } })
      await assert.rejects(byNumber.Get({ name: 'e' }), refused)
    } finally {
      ch.close()
    }

    // Without httpGet every call POSTs, whatever the definition says.
    ch = new rill.Channel(plainTarget, { protocol: 'connect', httpVersion })
    assert.equal(ch.httpGet, false)
    try {
      assert.equal((await rill.makeClient(ch, LOOKUP).Get({ name: 'f' })).text, 'got f')
    } finally {
      ch.close()
    }

    // gRPC and gRPC-Web have no GET: the marking changes nothing.
    for (const protocol of httpVersion === 'http1' ? ['grpc-web'] : ['grpc', 'grpc-web']) {
      ch = new rill.Channel(plainTarget, { protocol, httpVersion, httpGet: true })
      try {
        assert.equal((await rill.makeClient(ch, LOOKUP).Get({ name: 'g' })).text, 'got g')
      } finally {
        ch.close()
      }
    }
  })
}

/** A GET written with node:http, as curl or an HTTP cache would send it. */
function rawGet (target, method, message) {
  const b64 = Buffer.from(message).toString('base64url')
  const url = `${target}${method}?connect=v1&base64=1&encoding=proto&message=${b64}`
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    }).on('error', reject)
  })
}

test('a raw GET is answered for the marked method only', async () => {
  seen.length = 0
  const r = await rawGet(lookupTarget, GET, encKey({ name: 'raw' }))
  assert.equal(r.status, 200)
  assert.equal(r.headers['content-type'], 'application/proto')
  assert.equal(decValue(r.body).text, 'got raw')
  assert.deepEqual(seen, [[GET, 'connect', 'proto']])
  for (const method of [TOUCH, PUT]) {
    const r = await rawGet(lookupTarget, method, encKey({ name: 'raw' }))
    assert.equal(r.status, 405, method)
    assert.equal(r.headers.allow, 'POST')
  }
  assert.equal(seen.length, 1)
})

for (const httpVersion of HTTP_VERSIONS) {
  test(`raw calls and methods name their level, ${httpVersion}`, async () => {
    const server = new rill.Server()
    const raw = (call) => Buffer.concat([Buffer.from('raw '), call.request])
    server.unary(GET, raw, { idempotency: 'no-side-effects' })
    server.unary(PUT, raw, { idempotency: 'idempotent' })
    const target = `http://127.0.0.1:${server.listen('127.0.0.1:0')}`
    try {
      let r = await rawGet(target, GET, 'by hand')
      assert.equal(r.status, 200)
      assert.equal(r.body.toString(), 'raw by hand')
      r = await rawGet(target, PUT, 'by hand')
      assert.equal(r.status, 405)
      const ch = new rill.Channel(target, { protocol: 'connect', httpVersion, httpGet: true })
      try {
        assert.equal((await ch.unary(GET, Buffer.from('x'), { idempotency: 'no-side-effects' })).toString(), 'raw x')
        assert.equal((await ch.unary(PUT, Buffer.from('y'), { idempotency: 'idempotent' })).toString(), 'raw y')
      } finally {
        ch.close()
      }
    } finally {
      await server.close()
    }

    const ch = new rill.Channel(plainTarget, { protocol: 'connect', httpVersion, httpGet: true })
    try {
      const msg = encKey({ name: 'h' })
      await assert.rejects(ch.unary(GET, msg, { idempotency: 'no-side-effects' }), refused)
      assert.equal(decValue(await ch.unary(GET, msg)).text, 'got h')
      assert.equal(decValue(await ch.unary(GET, msg, { idempotency: 'idempotent' })).text, 'got h')
      // A channel's call defaults may carry it too.
      const marked = new rill.Channel(plainTarget, { protocol: 'connect', httpVersion, httpGet: true, callDefaults: { idempotency: 'no-side-effects' } })
      try {
        await assert.rejects(marked.unary(GET, msg), refused)
      } finally {
        marked.close()
      }
    } finally {
      ch.close()
    }
  })
}

test('unknown idempotency names are refused', async () => {
  const ch = new rill.Channel('http://127.0.0.1:1', { protocol: 'connect', httpGet: true })
  try {
    for (const bad of ['NO_SIDE_EFFECTS', 'no_side_effects', '', 'get']) {
      const why = new RegExp(`unknown idempotency ".*": ${NAMES}`)
      await assert.rejects(ch.unary(GET, Buffer.alloc(0), { idempotency: bad }), why)
      assert.throws(() => ch.serverStreaming(GET, Buffer.alloc(0), { idempotency: bad }), why)
    }
  } finally {
    ch.close()
  }
  const server = new rill.Server()
  assert.throws(() => server.unary(GET, () => Buffer.alloc(0), { idempotency: 'read-only' }),
    new RegExp(`unknown idempotency "read-only": ${NAMES}`))
  assert.throws(() => server.addMethod(GET, rill.SHAPE.UNARY, { idempotency: 'NO_SIDE_EFFECTS' }), /unknown idempotency/)
})

test('the request line over HTTP/1.1', async () => {
  // A bare HTTP/1.1 server answering as a Connect server would: it records the request
  // line of each call the client makes.
  const lines = []
  const answer = LOOKUP.Get.responseSerialize({ text: 'seen' })
  const listener = http.createServer((req, res) => {
    lines.push(`${req.method} ${req.url}`)
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/proto', 'content-length': answer.length })
      res.end(answer)
    })
  })
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve))
  const target = `http://127.0.0.1:${listener.address().port}`
  try {
    for (const httpGet of [true, false]) {
      const ch = new rill.Channel(target, { protocol: 'connect', httpVersion: 'http1', httpGet })
      const client = rill.makeClient(ch, LOOKUP)
      try {
        for (const rpc of [client.Get, client.Touch, client.Put]) {
          assert.equal((await rpc({ name: 'hi' })).text, 'seen')
        }
      } finally {
        ch.close()
      }
    }
  } finally {
    listener.closeAllConnections()
    await new Promise((resolve) => listener.close(resolve))
  }
  const b64 = encKey({ name: 'hi' }).toString('base64url')
  assert.deepEqual(lines, [
    `GET ${GET}?connect=v1&base64=1&encoding=proto&message=${b64}`,
    `POST ${TOUCH}`,
    `POST ${PUT}`,
    `POST ${GET}`,
    `POST ${TOUCH}`,
    `POST ${PUT}`
  ])
})
