'use strict'
// The rillrpc client against an @grpc/grpc-js server.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { Readable, Writable, pipeline } = require('node:stream')
const { promisify } = require('node:util')
const { spawn } = require('node:child_process')
const path = require('node:path')
const rill = require('..')
const { M, encReq, decResp, service, startGrpcJs } = require('./peer')

const stats = {}
let peer
let ch
const codec = { serialize: encReq, deserialize: decResp }

before(async () => {
  peer = await startGrpcJs(stats)
  ch = new rill.Channel(`http://127.0.0.1:${peer.port}`)
})

after(() => {
  ch.close()
  peer.server.forceShutdown()
})

test('unary with Buffers, headers and trailers', async () => {
  const p = ch.unary(M.PingPong, encReq({ payload: Buffer.from('hi') }), { metadata: { 'echo-a': 'x', 'echo-b-bin': Buffer.from([0, 1, 255]) } })
  const resp = await p
  assert.ok(Buffer.isBuffer(resp))
  assert.equal(decResp(resp).payload.toString(), 'hi')
  const h = await p.headers
  assert.equal(h['echo-a'], 'x')
  assert.deepEqual(h['echo-b-bin'], Buffer.from([0, 1, 255]))
  const t = await p.trailers
  assert.equal(t['echo-a'], 'x')
})

test('a client from the proto-loader service definition', async () => {
  const client = rill.makeClient(ch, service)
  const r = await client.PingPong({ payload: Buffer.from('typed') })
  assert.equal(r.payload.toString(), 'typed')
  const got = []
  for await (const m of client.EchoServer({ payload: Buffer.from('s'), count: 5 })) got.push(m.payload.toString())
  assert.deepEqual(got, ['s', 's', 's', 's', 's'])
  const w = client.EchoClient()
  w.write({ payload: Buffer.alloc(10) })
  w.end({ payload: Buffer.alloc(5) })
  assert.equal((await w.response).payload.toString(), '15')
  const b = client.Echo()
  b.write({ payload: Buffer.from('1') })
  b.write({ payload: Buffer.from('2') })
  b.end()
  const back = []
  for await (const m of b) back.push(m.payload.toString())
  assert.deepEqual(back, ['1', '2'])
})

test('server streaming: many messages, in order, and the status event', async () => {
  const s = ch.serverStreaming(M.EchoServer, { payload: Buffer.from('x'), count: 20000 }, codec)
  let n = 0
  let st
  s.on('status', (x) => { st = x })
  for await (const m of s) {
    assert.equal(m.payload.length, 1)
    n++
  }
  assert.equal(n, 20000)
  assert.equal(st.code, rill.status.OK)
})

test('status codes come back as RpcError with code, details and metadata', async () => {
  for (const code of [3, 5, 7, 13, 16]) {
    await assert.rejects(ch.unary(M.PingPong, { payload: Buffer.from(`boom ${code}`), count: -code }, { ...codec, metadata: { 'echo-z': 'q' } }), (e) => {
      assert.ok(e instanceof rill.RpcError)
      assert.ok(e instanceof Error)
      assert.equal(e.code, code)
      assert.equal(e.details, `boom ${code}`)
      assert.equal(e.metadata['echo-z'], 'q')
      return true
    })
  }
  const s = ch.serverStreaming(M.EchoServer, { payload: Buffer.from('nope'), count: -9 }, codec)
  await assert.rejects(async () => { for await (const _ of s) ; }, (e) => e.code === 9 && e.details === 'nope')
})

// Eight grpc-js server streams of 2 MiB each that the application reads nothing of yet
// (past what a stream's buffer takes), then a unary call on the same channel: whether it
// got through within 2 s. Then every stream is read whole.
async function unaryPastUnreadServerStreams (opts) {
  const c = new rill.Channel(`http://127.0.0.1:${peer.port}`, opts)
  try {
    await c.unary(M.PingPong, { payload: Buffer.alloc(0) }, codec)
    const payload = Buffer.alloc(32 * 1024, 7)
    const calls = []
    for (let i = 0; i < 8; i++) calls.push(c.serverStreaming(M.EchoServer, { payload, count: 64 }, codec))
    await sleep(500)
    let through = true
    try {
      await c.unary(M.PingPong, { payload: Buffer.from('through') }, { ...codec, timeout: 2000 })
    } catch (e) {
      assert.equal(e.code, rill.status.DEADLINE_EXCEEDED, String(e))
      through = false
    }
    // All at once: read one at a time, the others could take the window it frees and hold
    // it unread (the connection's first 4 MiB when it cannot grow).
    const counts = await Promise.all(calls.map(async (s) => {
      let n = 0
      for await (const m of s) {
        assert.equal(m.payload.length, 32 * 1024)
        n++
      }
      return n
    }))
    assert.deepEqual(counts, Array(8).fill(64))
    return through
  } finally {
    c.close()
  }
}

test('unread server streams do not stall the channel\'s other calls', async () => {
  assert.ok(await unaryPastUnreadServerStreams({}))
})

test('connectionReceiveBudget bounds what unread server streams hold', async () => {
  // Under the connection's first 4 MiB: the window stays there, and 8 unread streams of
  // 1 MiB windows spend it.
  assert.ok(!await unaryPastUnreadServerStreams({ connectionReceiveBudget: 1 }))
  assert.throws(() => new rill.Channel('http://127.0.0.1:1', { connectionReceiveBudget: -1 }), /invalid connectionReceiveBudget -1/)
})

test('unknown method is UNIMPLEMENTED', async () => {
  await assert.rejects(ch.unary('/echo.TestService/Nope', Buffer.alloc(0)), (e) => e.code === rill.status.UNIMPLEMENTED)
})

test('deadline: timeout and deadline options give DEADLINE_EXCEEDED', async () => {
  await assert.rejects(ch.unary(M.PingPong, { payload: Buffer.from('slow') }, { ...codec, timeout: 100, metadata: { 'sleep-ms': '2000' } }),
    (e) => e.code === rill.status.DEADLINE_EXCEEDED)
  await assert.rejects(ch.unary(M.PingPong, { payload: Buffer.from('slow') }, { ...codec, deadline: new Date(Date.now() + 100), metadata: { 'sleep-ms': '2000' } }),
    (e) => e.code === rill.status.DEADLINE_EXCEEDED)
  const ok = await ch.unary(M.PingPong, { payload: Buffer.from('fast') }, { ...codec, timeout: 5000 })
  assert.equal(ok.payload.toString(), 'fast')
})

test('cancel() and AbortSignal end the call as CANCELLED; the server sees it', async () => {
  const s = ch.serverStreaming(M.EchoServer, { payload: Buffer.alloc(100), count: 1e9 }, codec)
  let n = 0
  await assert.rejects(async () => {
    for await (const _ of s) { if (++n === 100) s.cancel() }
  }, (e) => e.code === rill.status.CANCELLED)
  await waitFor(() => stats.cancelled)

  const ac = new AbortController()
  const s2 = ch.serverStreaming(M.EchoServer, { payload: Buffer.alloc(100), count: 1e9 }, { ...codec, signal: ac.signal })
  n = 0
  await assert.rejects(async () => {
    for await (const _ of s2) { if (++n === 100) ac.abort() }
  }, (e) => e.code === rill.status.CANCELLED)
  await waitFor(() => stats.cancelled)

  const ac2 = new AbortController()
  ac2.abort()
  await assert.rejects(ch.unary(M.PingPong, { payload: Buffer.from('x') }, { ...codec, signal: ac2.signal }), (e) => e.code === rill.status.CANCELLED)
})

test('backpressure: a reader that stops bounds what a fast server gets to write', async () => {
  const size = 1024
  const count = 200000 // 200 MB if nothing held the server back
  const s = ch.serverStreaming(M.EchoServer, { payload: Buffer.alloc(size), count }, { serialize: encReq })
  const rss0 = process.memoryUsage().rss
  // Read a little, then stop reading for a while.
  let n = 0
  await new Promise((resolve) => {
    s.on('data', () => { if (++n === 1000) { s.pause(); resolve() } })
  })
  await sleep(1500)
  const written = stats.written
  const rss1 = process.memoryUsage().rss
  const heldMB = (written - n) * size / 1e6
  console.log(`# backpressure: server wrote ${written} of ${count} messages while the client read ${n}; ` +
    `in flight ${heldMB.toFixed(1)} MB; client buffered ${s.readableLength} messages; client rss +${((rss1 - rss0) / 1e6).toFixed(1)} MB`)
  assert.ok(stats.blocked, 'the server saw write() return false')
  assert.ok(written < count / 4, `server wrote ${written} messages`)
  assert.ok(s.readableLength <= 5000, `the client buffered ${s.readableLength} messages`)
  assert.ok(rss1 - rss0 < 100e6, `client rss grew by ${rss1 - rss0}`)
  await sleep(300)
  assert.equal(stats.written, written, 'nothing more was written while the reader was paused')
  s.cancel()
  s.on('error', () => {})
})

test('backpressure: write() returns false when the call is full, then drain', async () => {
  const w = ch.clientStreaming(M.EchoClient, codec)
  const big = { payload: Buffer.alloc(64 * 1024) }
  let writes = 0
  let sawFalse = false
  for (let i = 0; i < 2000; i++) {
    writes++
    if (!w.write(big)) {
      sawFalse = true
      await new Promise((resolve) => w.once('drain', resolve))
    }
  }
  w.end()
  const r = await w.response
  assert.ok(sawFalse)
  assert.equal(r.payload.toString(), String(2000 * 64 * 1024))
})

test('large messages both ways (8 MB)', async () => {
  const big = Buffer.alloc(8 << 20, 7)
  const r = await ch.unary(M.PingPong, { payload: big }, { ...codec, maxReceiveMessageSize: 16 << 20 })
  assert.equal(r.payload.length, big.length)
  assert.ok(r.payload.equals(big))
  // Over the default 4 MiB receive limit: RESOURCE_EXHAUSTED.
  await assert.rejects(ch.unary(M.PingPong, { payload: big }, codec), (e) => e.code === rill.status.RESOURCE_EXHAUSTED)
})

test('100 concurrent calls of every shape', async () => {
  const jobs = []
  for (let i = 0; i < 100; i++) {
    jobs.push(ch.unary(M.PingPong, { payload: Buffer.from(`u${i}`) }, codec).then((r) => assert.equal(r.payload.toString(), `u${i}`)))
    jobs.push((async () => {
      let n = 0
      for await (const _ of ch.serverStreaming(M.EchoServer, { payload: Buffer.from('s'), count: 50 }, codec)) n++
      assert.equal(n, 50)
    })())
    jobs.push((async () => {
      const b = ch.bidi(M.Echo, codec)
      const out = []
      b.on('data', (m) => out.push(m.payload.toString()))
      for (let k = 0; k < 10; k++) b.write({ payload: Buffer.from(`${i}.${k}`) })
      b.end()
      await new Promise((resolve, reject) => { b.on('end', resolve); b.on('error', reject) })
      assert.equal(out.length, 10)
      assert.equal(out[9], `${i}.9`)
    })())
  }
  await Promise.all(jobs)
})

test('pipeline() through a bidi call', async () => {
  const out = []
  await promisify(pipeline)(
    Readable.from(Array.from({ length: 1000 }, (_, i) => ({ payload: Buffer.from(String(i)) }))),
    ch.bidi(M.Echo, codec),
    new Writable({ objectMode: true, write (m, _e, cb) { out.push(m.payload.toString()); cb() } })
  )
  assert.equal(out.length, 1000)
  assert.equal(out[999], '999')
})

test('a server that dies mid-stream: the stream fails with UNAVAILABLE', async () => {
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'grpcjs-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(Number(String(d).trim()))))
  const c = new rill.Channel(`127.0.0.1:${port}`)
  const s = c.serverStreaming(M.EchoServer, { payload: Buffer.alloc(10), count: 1e9 }, codec)
  let n = 0
  await assert.rejects(async () => {
    for await (const _ of s) { if (++n === 1000) child.kill('SIGKILL') }
  }, (e) => e instanceof rill.RpcError && [rill.status.UNAVAILABLE, rill.status.INTERNAL, rill.status.CANCELLED, rill.status.UNKNOWN].includes(e.code))
  c.close()
})

test('offloadIo: connections read on the core\'s threads serve every shape the same', async () => {
  const c = new rill.Channel(`http://127.0.0.1:${peer.port}`, { offloadIo: true })
  const r = await c.unary(M.PingPong, { payload: Buffer.from('off') }, codec)
  assert.equal(Buffer.from(r.payload).toString(), 'off')
  let n = 0
  for await (const m of c.serverStreaming(M.EchoServer, { payload: Buffer.from('s'), count: 2000 }, codec)) {
    assert.equal(Buffer.from(m.payload).toString(), 's')
    n++
  }
  assert.equal(n, 2000)
  c.close()
})

test('a channel connects again after its server restarts on the same port', async () => {
  const start = (port) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'grpcjs-server.js'), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
    return new Promise((resolve) => child.stdout.once('data', (d) => resolve({ child, port: Number(String(d).trim()) })))
  }
  const first = await start(0)
  const c = new rill.Channel(`127.0.0.1:${first.port}`, { callDefaults: { waitForReady: true } })
  const once = async (p) => Buffer.from((await c.unary(M.PingPong, { payload: Buffer.from(p) }, codec)).payload).toString()
  assert.equal(await once('a'), 'a')
  first.child.kill('SIGKILL')
  await new Promise((resolve) => first.child.on('exit', resolve))
  const second = await start(first.port)
  try {
    let got
    for (let i = 0; i < 50 && got === undefined; i++) {
      got = await once('b').catch(() => sleep(100).then(() => undefined))
    }
    assert.equal(got, 'b')
  } finally {
    c.close()
    second.child.kill('SIGKILL')
  }
})

test('bad input gets clear errors', async () => {
  assert.throws(() => new rill.Channel('ftp://x'), /scheme/)
  await assert.rejects(ch.unary(M.PingPong, 42), /must be a Buffer/)
  assert.throws(() => ch.bidi(M.Echo, { metadata: { 'bad key': 'v' } }), /metadata/)
  assert.throws(() => ch.bidi(M.Echo, { metadata: { 'k-bin': 5n } }), /string or a Buffer/)
})

test('an idle channel does not keep the process alive after close()', async () => {
  const code = `
    const rill = require(${JSON.stringify(path.join(__dirname, '..'))})
    const ch = new rill.Channel('http://127.0.0.1:${peer.port}')
    ch.unary('${M.PingPong}', Buffer.alloc(0)).then(() => { ch.close(); console.log('done') })
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

test('authority names the server in Host (and :authority), as grpc-js\'s grpc.default_authority', async () => {
  const net = require('node:net')
  const hosts = []
  const listener = net.createServer((sock) => {
    let head = ''
    sock.on('data', (d) => {
      head += d.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      const lines = head.slice(0, end).split('\r\n').slice(1)
      const host = lines.find((l) => l.toLowerCase().startsWith('host:'))
      const length = lines.find((l) => l.toLowerCase().startsWith('content-length:'))
      if (head.length - end - 4 < Number(length ? length.split(':')[1] : 0)) return
      hosts.push(host && host.slice(5).trim())
      const body = '{"code":"not_found","message":"seen"}'
      sock.end(`HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
      head = ''
    })
  })
  await new Promise((resolve) => listener.listen(0, '127.0.0.1', resolve))
  const port = listener.address().port
  try {
    for (const authority of ['echo', undefined]) {
      const ch = new rill.Channel(`http://127.0.0.1:${port}`, { protocol: 'connect', httpVersion: 'http1', authority })
      await assert.rejects(ch.unary(M.PingPong, Buffer.alloc(0)), (e) => e.code === rill.status.NOT_FOUND)
      ch.close()
    }
  } finally {
    listener.close()
  }
  assert.deepEqual(hosts, ['echo', `127.0.0.1:${port}`])
  assert.throws(() => new rill.Channel('http://127.0.0.1:1', { authority: 'a b' }), /authority/)
})
