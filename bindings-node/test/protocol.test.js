'use strict'
// gRPC-Web and Connect beside gRPC: the Node client speaking each (`protocol`) to the Node
// server, reading connections on the JS thread and on the core's threads (`offloadIo`),
// over HTTP/2 and HTTP/1.1 (`httpVersion`); the server telling a handler which protocol
// the client spoke and in which codec (`call.protocol`, `call.codec`); CORS for browser
// pages (`cors`), over HTTP/1.1 as a page's fetch makes its calls.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const rill = require('..')
const { M, service, encReq, decResp } = require('./peer')

const PROTOCOLS = ['grpc-web', 'connect', 'grpc', 'ttheader']
const WHICH = '/test.Protocol/Which'
const echoMd = (md) => Object.fromEntries(Object.entries(md).filter(([k]) => k.startsWith('echo-')))
const fail = (req, md) => req.count < 0 ? new rill.RpcError(-req.count, Buffer.from(req.payload).toString(), md) : null

/** The echo service on rillrpc, each handler noting the protocol of its call. */
function echoImpl (seen, codecs = []) {
  const start = (call) => {
    seen.push(call.protocol)
    codecs.push(call.codec)
    call.sendHeaders(echoMd(call.metadata))
    call.setTrailers(echoMd(call.metadata))
  }
  return {
    PingPong (call) {
      start(call)
      const f = fail(call.request, echoMd(call.metadata))
      if (f) throw f
      return { payload: call.request.payload }
    },
    async EchoServer (call) {
      start(call)
      const f = fail(call.request, echoMd(call.metadata))
      if (f) throw f
      for (let i = 0; i < call.request.count; i++) {
        if (!call.write({ payload: call.request.payload })) await new Promise((resolve) => call.once('drain', resolve))
      }
    },
    async EchoClient (call) {
      start(call)
      let total = 0
      for await (const r of call) total += r.payload.length
      return { payload: Buffer.from(String(total)) }
    },
    async Echo (call) {
      start(call)
      for await (const r of call) call.write({ payload: r.payload })
    }
  }
}

const seen = []
const codecs = []
let server
let target

before(() => {
  server = new rill.Server()
  server.addService(service, echoImpl(seen, codecs))
  server.unary(WHICH, (call) => Buffer.from(call.codec === 'json' ? `{"codec":"${call.codec}"}` : call.protocol))
  target = `http://127.0.0.1:${server.listen('127.0.0.1:0')}`
})

after(() => server.shutdown(0))

for (const protocol of PROTOCOLS) {
  for (const offloadIo of [false, true]) {
    test(`every shape, metadata and a status over ${protocol}${offloadIo ? ' (offloadIo)' : ''}`, async () => {
      const ch = new rill.Channel(target, { protocol, offloadIo })
      assert.equal(ch.protocol, protocol)
      const client = rill.makeClient(ch, service)
      seen.length = 0
      try {
        const p = client.PingPong({ payload: Buffer.from('hi') }, { metadata: { 'echo-a': protocol, 'echo-b-bin': Buffer.from([0, 255]), other: 'x' } })
        assert.equal((await p).payload.toString(), 'hi')
        const h = await p.headers
        assert.equal(h['echo-a'], protocol)
        assert.deepEqual(h['echo-b-bin'], Buffer.from([0, 255]))
        assert.equal(h.other, undefined)
        assert.equal((await p.trailers)['echo-a'], protocol)

        if (protocol === 'ttheader') {
          // The client's messages are protobuf: PingPong went as Kitex's Protobuf, and
          // Kitex's TTHeader Streaming carries Thrift only (kitex_protobuf.test.js). The
          // streams below carry the same bytes with no codec named (`contentSubtype: ''`), as a C
          // caller's do.
          await assert.rejects(async () => { for await (const _ of client.EchoServer({ payload: Buffer.from('s'), count: 1 })); },
            (e) => e.code === rill.status.UNIMPLEMENTED && e.details.includes('over gRPC'))
        }
        const so = protocol === 'ttheader' ? { contentSubtype: '' } : {}
        let n = 0
        for await (const m of client.EchoServer({ payload: Buffer.from('s'), count: 5000 }, so)) {
          assert.equal(m.payload.toString(), 's')
          n++
        }
        assert.equal(n, 5000)

        const w = client.EchoClient(so)
        w.write({ payload: Buffer.alloc(10) })
        w.end({ payload: Buffer.alloc(5) })
        assert.equal((await w.response).payload.toString(), '15')

        const b = client.Echo(so)
        for (let i = 0; i < 100; i++) b.write({ payload: Buffer.from(String(i)) })
        b.end()
        const back = []
        for await (const m of b) back.push(m.payload.toString())
        assert.deepEqual(back, Array.from({ length: 100 }, (_, i) => String(i)))

        const codec = { serialize: encReq, deserialize: decResp, metadata: { 'echo-why': 'because' } }
        const bad = { payload: Buffer.from('nothing here: é'), count: -5 }
        // A Connect unary error carries the headers and the trailers as one list (the
        // handler sent echo-why in both), as connect-go reads them.
        // Kitex's TTHeader says an error by its message alone (a TApplicationException): the
        // code arrives as INTERNAL.
        const code = protocol === 'ttheader' ? rill.status.INTERNAL : rill.status.NOT_FOUND
        const isNotFound = (e) => e instanceof rill.RpcError && e.code === code &&
          e.details === 'nothing here: é' && [].concat(e.metadata['echo-why']).every((v) => v === 'because')
        await assert.rejects(ch.unary(M.PingPong, bad, codec), isNotFound)
        // The client's own PingPong: Kitex's Protobuf over ttheader, its error an ErrorProto.
        await assert.rejects(client.PingPong(bad, { metadata: { 'echo-why': 'because' } }), isNotFound)
        await assert.rejects(async () => { for await (const _ of ch.serverStreaming(M.EchoServer, bad, codec)); }, isNotFound)
        assert.ok(seen.length >= 6 && seen.every((p) => p === protocol), String(seen))
      } finally {
        ch.close()
      }
    })
  }
}

test('a server call knows its protocol, in handlers and in the pull form', async () => {
  for (const protocol of PROTOCOLS) {
    const ch = new rill.Channel(target, { protocol })
    assert.equal((await ch.unary(WHICH, Buffer.from('?'))).toString(), protocol)
    ch.close()
  }

  const puller = new rill.Server()
  puller.addMethod(M.Echo, rill.SHAPE.BIDI)
  const port = puller.listen('127.0.0.1:0')
  const calls = puller[Symbol.asyncIterator]()
  try {
    for (const protocol of PROTOCOLS) {
      const ch = new rill.Channel(`http://127.0.0.1:${port}`, { protocol })
      const b = ch.bidi(M.Echo)
      b.write(Buffer.from('hi'))
      b.end()
      const { value: call } = await calls.next()
      assert.equal(call.protocol, protocol)
      for await (const m of call) call.write(m)
      call.end()
      const back = []
      for await (const m of b) back.push(m.toString())
      assert.deepEqual(back, ['hi'])
      ch.close()
    }
  } finally {
    await puller.shutdown(0)
  }
})

for (const protocol of ['connect', 'grpc-web']) {
  test(`unary, server and client streaming and a status over ${protocol}, HTTP/1.1`, async () => {
    const ch = new rill.Channel(target, { protocol, httpVersion: 'http1' })
    assert.equal(ch.httpVersion, 'http1')
    assert.equal(ch.protocol, protocol)
    const client = rill.makeClient(ch, service)
    seen.length = 0
    codecs.length = 0
    try {
      const p = client.PingPong({ payload: Buffer.from('over http/1.1') }, { metadata: { 'echo-a': protocol } })
      assert.equal((await p).payload.toString(), 'over http/1.1')
      assert.equal((await p.headers)['echo-a'], protocol)
      assert.equal((await p.trailers)['echo-a'], protocol)

      let n = 0
      for await (const m of client.EchoServer({ payload: Buffer.alloc(100, 's'), count: 2000 })) {
        assert.equal(m.payload.length, 100)
        n++
      }
      assert.equal(n, 2000)

      const w = client.EchoClient()
      w.write({ payload: Buffer.alloc(10) })
      w.end({ payload: Buffer.alloc(5) })
      assert.equal((await w.response).payload.toString(), '15')

      const bad = { serialize: encReq, deserialize: decResp, metadata: { 'echo-why': 'because' } }
      await assert.rejects(ch.unary(M.PingPong, { payload: Buffer.from('nothing here'), count: -5 }, bad),
        (e) => e instanceof rill.RpcError && e.code === rill.status.NOT_FOUND && e.details === 'nothing here')

      // Bidi needs HTTP/2: the core's refusal is the call's error.
      const b = client.Echo()
      b.on('error', () => {})
      await assert.rejects(async () => { for await (const _ of b); },
        (e) => e instanceof rill.RpcError && e.code === rill.status.UNIMPLEMENTED)

      // Calls at once: each has a connection of its own.
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => client.PingPong({ payload: Buffer.from(String(i)) })))
      assert.deepEqual(replies.map((r) => r.payload.toString()), Array.from({ length: 20 }, (_, i) => String(i)))
      assert.ok(seen.length >= 4 && seen.every((p) => p === protocol), String(seen))
      assert.ok(codecs.every((c) => c === 'proto'), String(codecs))
    } finally {
      ch.close()
    }
  })
}

test('an unknown httpVersion is refused by name', () => {
  assert.equal(new rill.Channel(target).httpVersion, 'http2')
  for (const v of ['http1', 'http2', 'auto']) {
    assert.equal(new rill.Channel(target, { protocol: 'connect', httpVersion: v }).httpVersion, v)
  }
  // The core's rule: gRPC's trailers need HTTP/2.
  assert.throws(() => new rill.Channel(target, { httpVersion: 'http1' }), /gRPC needs HTTP\/2/)
  for (const bad of ['HTTP1', 'http/1.1', 'h2', '', 'http3']) {
    assert.throws(() => new rill.Channel(target, { protocol: 'connect', httpVersion: bad }),
      /unknown httpVersion ".*": use one of 'http2', 'http1', 'auto'/)
  }
})

test('a server call knows its codec', async () => {
  codecs.length = 0
  for (const protocol of PROTOCOLS) {
    const ch = new rill.Channel(target, { protocol })
    assert.equal(decResp(await ch.unary(M.PingPong, encReq({ payload: Buffer.from('?') }))).payload.toString(), '?')
    ch.close()
  }
  // TTHeader carries Thrift: its calls say so, whatever bytes they carry.
  assert.deepEqual(codecs, ['proto', 'proto', 'proto', 'thrift'])

  // JSON, as a browser page's Connect client sends it: unary over HTTP/1.1.
  const port = Number(new URL(target).port)
  const r = await http1(port, 'POST', { 'content-type': 'application/json', 'connect-protocol-version': '1' }, '{}', WHICH)
  assert.equal(r.status, 200)
  assert.equal(r.headers['content-type'], 'application/json')
  assert.equal(r.body.toString(), '{"codec":"json"}')
})

test('a biz status ends a call on every protocol, code, message and extra whole', async () => {
  const extra = { sku: 'a-1', note: 'ñ ✓' }
  const server = new rill.Server()
  server.unary('/test.Biz/Unary', (call) => { throw new rill.BizStatusError(7, `out of stock: ${call.request}`, extra) })
  server.serverStreaming('/test.Biz/Stream', async (call) => {
    call.write(Buffer.from('first'))
    throw new rill.BizStatusError(-3)
  })
  const port = server.listen('127.0.0.1:0')
  try {
    for (const protocol of PROTOCOLS) {
      const ch = new rill.Channel(`http://127.0.0.1:${port}`, { protocol })
      const e = await ch.unary('/test.Biz/Unary', Buffer.from('pen')).then(() => null, (e) => e)
      assert.ok(e instanceof rill.BizStatusError && e instanceof rill.RpcError, `${protocol}: ${e}`)
      assert.deepEqual([e.bizCode, e.bizMessage, e.bizExtra], [7, 'out of stock: pen', extra], protocol)
      assert.equal(e.code, rill.status.INTERNAL)
      assert.equal(e.metadata['biz-status'], '7')
      const got = []
      const s = ch.serverStreaming('/test.Biz/Stream', Buffer.alloc(0))
      const e2 = await (async () => { for await (const m of s) got.push(m.toString()) })().then(() => null, (e) => e)
      assert.deepEqual(got, ['first'], protocol)
      assert.ok(e2 instanceof rill.BizStatusError, `${protocol}: ${e2}`)
      assert.deepEqual([e2.bizCode, e2.bizMessage, e2.bizExtra], [-3, '', {}], protocol)
      ch.close()
    }
  } finally {
    await server.shutdown(0)
  }
})

test('regression: responses that came before an error status reach an async iterator', async () => {
  // The stream was destroyed at the status, and a destroyed stream yields nothing more:
  // `for await` saw the error and none of the responses before it, on every protocol.
  const server = new rill.Server()
  server.serverStreaming('/test.Fail/AfterTwo', async (call) => {
    call.write(Buffer.from('a'))
    call.write(Buffer.from('b'))
    throw new rill.RpcError(rill.status.NOT_FOUND, 'gone')
  })
  const port = server.listen('127.0.0.1:0')
  try {
    for (const protocol of PROTOCOLS) {
      const ch = new rill.Channel(`http://127.0.0.1:${port}`, { protocol })
      const got = []
      const s = ch.serverStreaming('/test.Fail/AfterTwo', Buffer.alloc(0))
      const e = await (async () => { for await (const m of s) got.push(m.toString()) })().then(() => null, (e) => e)
      assert.deepEqual(got, ['a', 'b'], protocol)
      assert.ok(e instanceof rill.RpcError, `${protocol}: ${e}`)
      ch.close()
    }
  } finally {
    await server.shutdown(0)
  }
})

test('a biz status error is built by the core', () => {
  const e = new rill.BizStatusError(5, 'no', { 'echo-count': '-5' })
  assert.equal(e.code, rill.status.INTERNAL)
  assert.equal(e.details, 'no')
  // WIRE.md §3.2, Kitex over gRPC: `biz-status: 5`, `biz-extra: {"echo-count":"-5"}`.
  assert.deepEqual(e.metadata, { 'biz-status': '5', 'biz-extra': '{"echo-count":"-5"}' })
})

test('an unknown protocol is refused by name', () => {
  assert.equal(new rill.Channel(target).protocol, 'grpc')
  for (const bad of ['http3', 'GRPC', '', 'grpc_web']) {
    assert.throws(() => new rill.Channel(target, { protocol: bad }),
      /unknown protocol ".*": use one of 'grpc', 'grpc-web', 'connect'/)
  }
})

/** One HTTP/1.1 exchange with the server, as a browser page's fetch makes it. */
function http1 (port, method, headers, body, path = M.PingPong) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const preflight = (port, origin) => http1(port, 'OPTIONS', {
  origin,
  'access-control-request-method': 'POST',
  'access-control-request-headers': 'content-type,echo-a'
})

test('cors lets the pages of the named origins call', async () => {
  const s = new rill.Server({ cors: ['http://allowed.test', 'http://also.test'], corsMaxAge: 600000 })
  s.addService(service, echoImpl([]))
  const port = s.listen('127.0.0.1:0')
  try {
    let r = await preflight(port, 'http://also.test')
    assert.equal(r.status, 204)
    assert.equal(r.headers['access-control-allow-origin'], 'http://also.test')
    assert.equal(r.headers['access-control-allow-headers'], 'content-type,echo-a')
    assert.equal(r.headers['access-control-max-age'], '600')
    r = await preflight(port, 'http://other.test')
    assert.equal(r.headers['access-control-allow-origin'], undefined)

    // The call itself: Connect unary over HTTP/1.1.
    r = await http1(port, 'POST', {
      origin: 'http://allowed.test',
      'content-type': 'application/proto',
      'connect-protocol-version': '1',
      'echo-a': 'seen'
    }, encReq({ payload: Buffer.from('from a page') }))
    assert.equal(r.status, 200)
    assert.equal(r.headers['access-control-allow-origin'], 'http://allowed.test')
    assert.match(r.headers['access-control-expose-headers'], /\becho-a\b/)
    assert.equal(decResp(r.body).payload.toString(), 'from a page')
  } finally {
    await s.shutdown(0)
  }
})

test('cors: any origin, none, and bad options', async () => {
  for (const [cors, back] of [['*', 'http://any.test'], [undefined, undefined], [[], undefined]]) {
    const s = new rill.Server({ cors })
    s.addService(service, echoImpl([]))
    const port = s.listen('127.0.0.1:0')
    try {
      const r = await preflight(port, 'http://any.test')
      assert.equal(r.headers['access-control-allow-origin'], back, String(cors))
      if (back) assert.equal(r.headers['access-control-max-age'], '7200')
    } finally {
      await s.shutdown(0)
    }
  }
  assert.throws(() => new rill.Server({ corsMaxAge: 5000 }), /corsMaxAge needs cors/)
  assert.throws(() => new rill.Server({ cors: '*', corsMaxAge: -1 }), /invalid corsMaxAge/)
})
