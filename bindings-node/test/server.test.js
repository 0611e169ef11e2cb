'use strict'
// The rillrpc server against an @grpc/grpc-js client.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')
const rill = require('..')
const { grpc, M, service, grpcJsClient, encResp, decReq, encReq, decResp } = require('./peer')

const seen = {}
let server
let port
let client

/** The echo service on rillrpc, with handlers of every shape. */
function echoImpl () {
  const echoMd = (md) => Object.fromEntries(Object.entries(md).filter(([k]) => k.startsWith('echo-')))
  const failIfAsked = (req) => req.count < 0 ? new rill.RpcError(-req.count, Buffer.from(req.payload).toString(), {}) : null
  return {
    async PingPong (call) {
      call.sendHeaders(echoMd(call.metadata))
      call.setTrailers(echoMd(call.metadata))
      seen.deadline = call.deadline
      const sleep = Number(call.metadata['sleep-ms'] || 0)
      if (sleep) {
        await new Promise((resolve) => {
          const t = setTimeout(resolve, sleep)
          call.on('cancelled', (e) => { seen.cancelled = e; clearTimeout(t); resolve() })
        })
      }
      if (call.request.payload.toString() === 'throw') throw new Error('handler blew up')
      const f = failIfAsked(call.request)
      if (f) { f.metadata = echoMd(call.metadata); throw f }
      return { payload: call.request.payload }
    },
    EchoServer (call) {
      call.sendHeaders(echoMd(call.metadata))
      call.setTrailers(echoMd(call.metadata))
      const f = failIfAsked(call.request)
      if (f) return call.sendStatus({ code: f.code, details: f.details })
      seen.written = 0
      seen.blocked = false
      seen.streamCancelled = false
      call.on('cancelled', () => { seen.streamCancelled = true })
      const n = call.request.count
      const msg = { payload: call.request.payload }
      let i = 0
      const pump = () => {
        while (i < n) {
          if (call.cancelled) return
          i++
          seen.written = i
          if (!call.write(msg)) {
            seen.blocked = true
            call.once('drain', pump)
            return
          }
        }
        call.end()
      }
      pump()
    },
    async EchoClient (call) {
      call.sendHeaders(echoMd(call.metadata))
      call.setTrailers(echoMd(call.metadata))
      let total = 0
      for await (const r of call) total += r.payload.length
      return { payload: Buffer.from(String(total)) }
    },
    async Echo (call) {
      call.sendHeaders(echoMd(call.metadata))
      call.setTrailers(echoMd(call.metadata))
      for await (const r of call) {
        const f = failIfAsked(r)
        if (f) throw f
        if (!call.write({ payload: r.payload })) await new Promise((resolve) => call.once('drain', resolve))
      }
    }
  }
}

before(() => {
  server = new rill.Server()
  server.addService(service, echoImpl())
  port = server.listen('127.0.0.1:0')
  client = grpcJsClient(port)
})

after(async () => {
  client.close()
  await server.shutdown(100)
})

const unary = (req, md = {}, opts = {}) => new Promise((resolve, reject) => {
  const m = new grpc.Metadata()
  for (const [k, v] of Object.entries(md)) m.add(k, v)
  const call = client.PingPong(req, m, opts, (e, r) => e ? reject(e) : resolve({ r, call }))
})

test('unary, with metadata echoed in headers and trailers', async () => {
  const m = new grpc.Metadata()
  m.add('echo-a', 'x')
  m.add('echo-b-bin', Buffer.from([1, 2, 3]))
  const heads = []
  const trails = []
  const r = await new Promise((resolve, reject) => {
    const call = client.PingPong({ payload: Buffer.from('hello') }, m, (e, r) => e ? reject(e) : resolve(r))
    call.on('metadata', (md) => heads.push(md))
    call.on('status', (s) => trails.push(s.metadata))
  })
  assert.equal(r.payload.toString(), 'hello')
  assert.equal(heads[0].get('echo-a')[0], 'x')
  assert.deepEqual(heads[0].get('echo-b-bin')[0], Buffer.from([1, 2, 3]))
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(trails[0].get('echo-a')[0], 'x')
})

test('server streaming, client streaming and bidi', async () => {
  const got = []
  await new Promise((resolve, reject) => {
    const s = client.EchoServer({ payload: Buffer.from('p'), count: 10000 })
    s.on('data', (m) => got.push(m))
    s.on('end', resolve)
    s.on('error', reject)
  })
  assert.equal(got.length, 10000)
  const total = await new Promise((resolve, reject) => {
    const w = client.EchoClient((e, r) => e ? reject(e) : resolve(r.payload.toString()))
    for (let i = 0; i < 100; i++) w.write({ payload: Buffer.alloc(i) })
    w.end()
  })
  assert.equal(total, String(99 * 100 / 2))
  const back = []
  await new Promise((resolve, reject) => {
    const b = client.Echo()
    b.on('data', (m) => back.push(m.payload.toString()))
    b.on('end', resolve)
    b.on('error', reject)
    for (let i = 0; i < 500; i++) b.write({ payload: Buffer.from(String(i)) })
    b.end()
  })
  assert.equal(back.length, 500)
  assert.equal(back[499], '499')
})

test('status codes, details and trailers from a handler', async () => {
  for (const code of [3, 5, 9, 14]) {
    await assert.rejects(unary({ payload: Buffer.from(`bad ${code}`), count: -code }, { 'echo-t': 'v' }), (e) => {
      assert.equal(e.code, code)
      assert.equal(e.details, `bad ${code}`)
      assert.equal(e.metadata.get('echo-t')[0], 'v')
      return true
    })
  }
  await assert.rejects(new Promise((resolve, reject) => {
    const s = client.EchoServer({ payload: Buffer.from('no'), count: -7 })
    s.on('data', () => {})
    s.on('error', reject)
    s.on('end', resolve)
  }), (e) => e.code === 7 && e.details === 'no')
  // Regression: a code outside 0..16 ended the call as INTERNAL "invalid trailers"; it is
  // UNKNOWN with the handler's message, as with grpcio and grpc-go.
  await assert.rejects(unary({ payload: Buffer.from('odd code'), count: -17 }), (e) => {
    assert.equal(e.code, grpc.status.UNKNOWN)
    assert.equal(e.details, 'odd code')
    return true
  })
})

test('a handler that throws ends the call as UNKNOWN and the server keeps serving', async () => {
  await assert.rejects(unary({ payload: Buffer.from('throw') }), (e) => e.code === grpc.status.UNKNOWN && /handler blew up/.test(e.details))
  const ok = await unary({ payload: Buffer.from('still here') })
  assert.equal(ok.r.payload.toString(), 'still here')
  await assert.rejects(new Promise((resolve, reject) => {
    const b = client.Echo()
    b.on('data', () => {})
    b.on('error', reject)
    b.on('end', resolve)
    b.write({ payload: Buffer.from('x'), count: -13 })
  }), (e) => e.code === 13)
})

test('unknown method is UNIMPLEMENTED', async () => {
  const raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
  await assert.rejects(new Promise((resolve, reject) => {
    raw.makeUnaryRequest('/echo.TestService/Nope', (x) => x, (x) => x, Buffer.alloc(0), (e, r) => e ? reject(e) : resolve(r))
  }), (e) => e.code === grpc.status.UNIMPLEMENTED)
  raw.close()
})

test('deadline: the handler sees it, the client gets DEADLINE_EXCEEDED, the handler hears of it', async () => {
  seen.cancelled = null
  await assert.rejects(unary({ payload: Buffer.from('slow') }, { 'sleep-ms': '3000' }, { deadline: Date.now() + 200 }),
    (e) => e.code === grpc.status.DEADLINE_EXCEEDED)
  assert.ok(seen.deadline instanceof Date)
  assert.ok(seen.deadline.getTime() - Date.now() < 1000)
  await waitFor(() => seen.cancelled)
  // The client's own deadline may reset the stream first: CANCELLED then.
  assert.ok([rill.status.DEADLINE_EXCEEDED, rill.status.CANCELLED].includes(seen.cancelled.code))
})

test('client cancellation reaches the handler', async () => {
  await new Promise((resolve) => {
    const s = client.EchoServer({ payload: Buffer.alloc(10), count: 1e9 })
    let n = 0
    s.on('data', () => { if (++n === 100) s.cancel() })
    s.on('error', (e) => { assert.equal(e.code, grpc.status.CANCELLED); resolve() })
  })
  await waitFor(() => seen.streamCancelled)
})

test('backpressure: a slow grpc-js reader bounds what the handler gets to write', async () => {
  const size = 1024
  const count = 200000
  const rss0 = process.memoryUsage().rss
  const s = client.EchoServer({ payload: Buffer.alloc(size), count })
  let n = 0
  await new Promise((resolve) => s.on('data', () => { if (++n === 1000) { s.pause(); resolve() } }))
  await sleep(1500)
  const written = seen.written
  const rss1 = process.memoryUsage().rss
  console.log(`# backpressure: handler wrote ${written} of ${count} messages while the client read ${n}; ` +
    `in flight ${((written - n) * size / 1e6).toFixed(1)} MB; rss +${((rss1 - rss0) / 1e6).toFixed(1)} MB (both ends in this process)`)
  assert.ok(seen.blocked, 'write() returned false')
  assert.ok(written < count / 4, `handler wrote ${written}`)
  assert.ok(rss1 - rss0 < 150e6)
  await sleep(300)
  assert.equal(seen.written, written)
  s.on('error', () => {})
  s.cancel()
})

test('large messages (8 MB) both ways', async () => {
  const big = Buffer.alloc(8 << 20, 3)
  const s = new rill.Server({ maxReceiveMessageSize: 16 << 20 })
  s.addService(service, echoImpl())
  const p = s.listen()
  const c = grpcJsClient(p)
  const r = await new Promise((resolve, reject) => c.PingPong({ payload: big }, (e, r) => e ? reject(e) : resolve(r)))
  assert.ok(r.payload.equals(big))
  c.close()
  await s.shutdown(0)
  // Over the default 4 MiB limit of the main server: RESOURCE_EXHAUSTED.
  await assert.rejects(unary({ payload: big }), (e) => e.code === grpc.status.RESOURCE_EXHAUSTED)
})

test('100 concurrent calls', async () => {
  const jobs = []
  for (let i = 0; i < 100; i++) {
    jobs.push(unary({ payload: Buffer.from(`c${i}`) }).then(({ r }) => assert.equal(r.payload.toString(), `c${i}`)))
    jobs.push(new Promise((resolve, reject) => {
      let n = 0
      const s = client.EchoServer({ payload: Buffer.from('z'), count: 100 })
      s.on('data', () => n++)
      s.on('end', () => { assert.equal(n, 100); resolve() })
      s.on('error', reject)
    }))
  }
  await Promise.all(jobs)
})

test('a client that dies mid-stream: the handler hears it', async () => {
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'grpcjs-reader.js'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
  seen.streamCancelled = false
  await new Promise((resolve) => child.stdout.once('data', resolve))
  child.kill('SIGKILL')
  await waitFor(() => seen.streamCancelled)
})

test('rillrpc client against the rillrpc server, typed', async () => {
  const c = rill.makeClient(new rill.Channel(`127.0.0.1:${port}`), service)
  assert.equal((await c.PingPong({ payload: Buffer.from('self') })).payload.toString(), 'self')
  let n = 0
  for await (const _ of c.EchoServer({ payload: Buffer.from('q'), count: 1000 })) n++
  assert.equal(n, 1000)
  c.channel.close()
})

test('pull form: the server as an async iterable of calls', async () => {
  const s = new rill.Server()
  s.addMethod(M.Echo, rill.SHAPE.BIDI)
  s.addMethod(M.PingPong, rill.SHAPE.UNARY)
  const p = s.listen()
  const served = (async () => {
    for await (const call of s) {
      for await (const m of call) {
        const req = decReq(m)
        call.write(encResp({ payload: Buffer.concat([Buffer.from(call.method + ':'), req.payload]) }))
      }
      call.end()
    }
  })()
  const c = new rill.Channel(`127.0.0.1:${p}`)
  const r = await c.unary(M.PingPong, encReq({ payload: Buffer.from('a') }))
  assert.equal(decResp(r).payload.toString(), `${M.PingPong}:a`)
  const gc = grpcJsClient(p)
  const out = await new Promise((resolve, reject) => {
    const b = gc.Echo()
    const got = []
    b.on('data', (m) => got.push(m.payload.toString()))
    b.on('end', () => resolve(got))
    b.on('error', reject)
    b.write({ payload: Buffer.from('b') })
    b.end()
  })
  assert.deepEqual(out, [`${M.Echo}:b`])
  gc.close()
  c.close()
  await s.shutdown(100)
  await served
})

test('graceful shutdown lets a call in flight finish, then refuses new ones', async () => {
  const s = new rill.Server()
  s.addService(service, echoImpl())
  const p = s.listen()
  const c = grpcJsClient(p)
  const slow = new Promise((resolve, reject) => {
    const m = new grpc.Metadata()
    m.add('sleep-ms', '300')
    c.PingPong({ payload: Buffer.from('inflight') }, m, (e, r) => e ? reject(e) : resolve(r))
  })
  await sleep(100)
  const t0 = Date.now()
  await s.shutdown(5000)
  assert.equal((await slow).payload.toString(), 'inflight')
  assert.ok(Date.now() - t0 < 5000)
  c.close()
})

test('ten grpc-js connections at once, each read on the JS thread, then closed', async () => {
  const clients = Array.from({ length: 10 }, () => grpcJsClient(port))
  await Promise.all(clients.map((c, i) => Promise.all([
    new Promise((resolve, reject) => c.PingPong({ payload: Buffer.from(`k${i}`) }, (e, r) => e ? reject(e) : resolve(r)))
      .then((r) => assert.equal(r.payload.toString(), `k${i}`)),
    new Promise((resolve, reject) => {
      const d = c.Echo()
      const got = []
      d.on('data', (m) => got.push(m.payload.toString()))
      d.on('end', () => { assert.deepEqual(got, ['a', 'b', 'c']); resolve() })
      d.on('error', reject)
      for (const p of ['a', 'b', 'c']) d.write({ payload: Buffer.from(p) })
      d.end()
    })
  ])))
  for (const c of clients) c.close()
  // The server keeps serving the connection it still has.
  const { r } = await unary({ payload: Buffer.from('still') })
  assert.equal(r.payload.toString(), 'still')
})

test('with offloadIo connections are read on the core\'s threads and serve the same', async () => {
  const s = new rill.Server({ maxReceiveMessageSize: 16 << 20, offloadIo: true })
  s.addService(service, echoImpl())
  const c = grpcJsClient(s.listen())
  const big = Buffer.alloc(5 << 20, 7)
  const r = await new Promise((resolve, reject) => c.PingPong({ payload: big }, (e, r) => e ? reject(e) : resolve(r)))
  assert.ok(r.payload.equals(big))
  const n = await new Promise((resolve, reject) => {
    let n = 0
    const st = c.EchoServer({ payload: Buffer.from('z'), count: 1000 })
    st.on('data', () => n++)
    st.on('end', () => resolve(n))
    st.on('error', reject)
  })
  assert.equal(n, 1000)
  c.close()
  await s.shutdown(0)
})

test('a server after shutdown does not keep the process alive', async () => {
  const code = `
    const rill = require(${JSON.stringify(path.join(__dirname, '..'))})
    const s = new rill.Server()
    s.unary('/echo.TestService/PingPong', (call) => call.request)
    const port = s.listen()
    const ch = new rill.Channel('127.0.0.1:' + port)
    ch.unary('/echo.TestService/PingPong', Buffer.from('x')).then(async () => { ch.close(); await s.shutdown(0); console.log('done') })
  `
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  const exit = await Promise.race([
    new Promise((resolve) => child.on('exit', (c) => resolve(c))),
    sleep(10000).then(() => 'hung')
  ])
  if (exit === 'hung') child.kill()
  assert.equal(exit, 0)
  assert.equal(out.trim(), 'done')
})

function sleep (ms) { return new Promise((resolve) => setTimeout(resolve, ms)) }
async function waitFor (f, ms = 5000) {
  const t0 = Date.now()
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting')
    await sleep(10)
  }
}

/** grpc-js's client (with channel options `clientOpts`) pings a server made with `opts`,
 * waiting `pauses[i]` ms after ping i: the peer address each ping came from. */
async function peersOfPings(opts, pauses, clientOpts = {}) {
  const peers = []
  const s = new rill.Server(opts)
  s.unary(M.PingPong, (call) => { peers.push(call.peer); return call.request })
  const p = s.listen()
  const Client = grpc.makeGenericClientConstructor(service, 'TestService')
  const c = new Client(`127.0.0.1:${p}`, grpc.credentials.createInsecure(), clientOpts)
  const ping = (payload) => new Promise((resolve, reject) =>
    c.PingPong({ payload: Buffer.from(payload) }, { deadline: Date.now() + 10000 }, (e, v) => e ? reject(e) : resolve(v)))
  for (const [i, pause] of pauses.entries()) {
    assert.equal((await ping(`${i}`)).payload.toString(), `${i}`)
    if (pause) await new Promise((resolve) => setTimeout(resolve, pause))
  }
  c.close()
  await s.shutdown(0)
  return peers
}

test('maxConnectionAge moves a grpc-js client to a new connection', async () => {
  const peers = await peersOfPings({ maxConnectionAge: 300, maxConnectionAgeGrace: 5000 }, [700, 0, 0])
  // Told to go after its age, the first connection gave way to a second one.
  assert.equal(new Set(peers).size, 2, peers.join(' '))
})

test('maxConnectionIdle closes a grpc-js client\'s idle connection', async () => {
  const peers = await peersOfPings({ maxConnectionIdle: 200 }, [700, 700])
  // Idle past the limit, the first connection was closed; grpc-js made a second one.
  assert.equal(new Set(peers).size, 2, peers.join(' '))
})

// grpc-js pinging every 100 ms, with or without calls.
const EAGER_KEEPALIVE = { 'grpc.keepalive_time_ms': 100, 'grpc.keepalive_permit_without_calls': 1 }

test('keepalive enforcement closes a grpc-js client that pings too often', async () => {
  const lenient = { permitKeepaliveTime: 50, permitKeepaliveWithoutCalls: true }
  const [strict, permitted] = await Promise.all([
    peersOfPings({}, [2000, 0], EAGER_KEEPALIVE),
    peersOfPings(lenient, [2000, 0], EAGER_KEEPALIVE)
  ])
  // By default the fourth PING too soon got GOAWAY ENHANCE_YOUR_CALM, and grpc-js made a
  // second connection; the server that permits such pings kept the first.
  assert.equal(new Set(strict).size, 2, strict.join(' '))
  assert.equal(new Set(permitted).size, 1, permitted.join(' '))
})

test('the server\'s keepalive PING goes to a quiet client, which is closed when it does not answer', async () => {
  const s = new rill.Server({ keepaliveTime: 100, keepaliveTimeout: 200 })
  s.unary(M.PingPong, (call) => call.request)
  const port = s.listen()
  // The preface and an empty SETTINGS frame, then nothing sent and nothing answered.
  const sock = require('node:net').connect(port, '127.0.0.1')
  sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]))
  const chunks = []
  sock.on('data', (b) => chunks.push(b))
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the server kept the connection open')), 20000)
    sock.on('close', () => { clearTimeout(t); resolve() })
  })
  let frames = Buffer.concat(chunks)
  let pings = 0
  while (frames.length >= 9) {
    // PING (type 6) without the ACK flag: the server's own.
    if (frames[3] === 6 && frames[4] === 0) pings++
    frames = frames.subarray(9 + frames.readUIntBE(0, 3))
  }
  assert.equal(pings, 1)
  await s.shutdown(0)
})

test('grpc-js answers the server\'s keepalive PINGs and keeps its connection', async () => {
  const peers = await peersOfPings({ keepaliveTime: 50, keepaliveTimeout: 500 }, [500, 500, 0])
  assert.equal(new Set(peers).size, 1, peers.join(' '))
})

test('the send budget cuts a grpc-js stream whose reader stopped reading', async () => {
  // A budget of one byte: any stalled stream holding more is cut at the next sweep.
  const s = new rill.Server({ connectionSendBudget: 1 })
  s.addService(service, echoImpl())
  const c = grpcJsClient(s.listen('127.0.0.1:0'))
  const stream = c.EchoServer({ payload: Buffer.alloc(1024), count: 1e6 })
  const failed = new Promise((resolve) => stream.on('error', resolve))
  let got = 0
  stream.on('data', () => {
    // Two messages, then nothing read: the windows close and the server's queue fills.
    if (++got === 2) stream.pause()
  })
  const e = await failed
  // RST_STREAM ENHANCE_YOUR_CALM, which grpc-js reports as RESOURCE_EXHAUSTED.
  assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED, e.message)
  c.close()
  await s.shutdown(0)
})

/**
 * Eight grpc-js client streams of 2 MiB whose handlers read nothing yet, then a unary call
 * on the same connection: whether it got through within 2 s. Then every stream is read.
 */
async function unaryPastUnreadRequestStreams (opts) {
  let go
  const gone = new Promise((resolve) => { go = resolve })
  const s = new rill.Server(opts)
  s.addService(service, {
    ...echoImpl(),
    async EchoClient (call) {
      await gone
      let total = 0
      for await (const r of call) total += r.payload.length
      return { payload: Buffer.from(String(total)) }
    }
  })
  const c = grpcJsClient(s.listen('127.0.0.1:0'))
  const chunk = { payload: Buffer.alloc(32 * 1024, 'r') }
  const streams = []
  for (let i = 0; i < 8; i++) {
    streams.push(new Promise((resolve, reject) => {
      const w = c.EchoClient((err, resp) => err ? reject(err) : resolve(resp))
      for (let j = 0; j < 64; j++) w.write(chunk)
      w.end()
    }))
  }
  await sleep(500)
  const through = await new Promise((resolve) => {
    c.PingPong({ payload: Buffer.from('through') }, { deadline: Date.now() + 2000 }, (err) => {
      if (err) assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED, err.message)
      resolve(!err)
    })
  })
  go()
  for (const r of await Promise.all(streams)) assert.equal(r.payload.toString(), String(64 * 32 * 1024))
  c.close()
  await s.shutdown(0)
  return through
}

test('request streams a handler has not read do not stall a grpc-js client\'s other calls', async () => {
  assert.ok(await unaryPastUnreadRequestStreams({}))
})

test('the receive budgets bound what unread request streams hold', async () => {
  // Under the connection's first 4 MiB: the window stays there, and 8 unread streams of
  // 1 MiB windows spend it.
  assert.ok(!await unaryPastUnreadRequestStreams({ connectionReceiveBudget: 1 }))
  assert.ok(!await unaryPastUnreadRequestStreams({ receiveBudget: 1 }))
})

test('connection limits are checked', () => {
  assert.throws(() => new rill.Server({ sendBudget: -1 }), /invalid sendBudget -1/)
  assert.throws(() => new rill.Server({ connectionSendBudget: 1.5 }), /invalid connectionSendBudget 1.5/)
  assert.throws(() => new rill.Server({ receiveBudget: -1 }), /invalid receiveBudget -1/)
  assert.throws(() => new rill.Server({ connectionReceiveBudget: 1.5 }), /invalid connectionReceiveBudget 1.5/)
  for (const k of ['handshakeTimeout', 'maxConnectionAge', 'maxConnectionAgeGrace', 'maxConnectionIdle',
    'headerReadTimeout', 'permitKeepaliveTime', 'keepaliveTime', 'keepaliveTimeout']) {
    assert.throws(() => new rill.Server({ [k]: -1 }), new RegExp(`invalid ${k} -1 ms`))
  }
})
