'use strict'
// rillrpc/thrift: Thrift services from an IDL loaded at run time (no codegen), as Kitex
// speaks them, over gRPC (application/grpc+thrift) and Kitex's TTHeader transports
// (TTHeader Streaming for streams, TTHeader-framed PingPong for unary calls):
//   - rillrpc's Node client against rillrpc's Node server, every shape, PingPong, metadata,
//     biz status both ways, declared exceptions, unknown methods;
//   - rillrpc's Node client against Kitex's server (kitex-server, real Kitex v0.16.3);
//   - Kitex's client (kitex-client) against a Node server with kitex-server's semantics
//     (fixtures/kitex_echo_server.js).
// The Kitex programs come from RILL_KITEX_OUT (default <CARGO_TARGET_DIR or repo/target>/kitex;
// `make kitex-build` builds them, `make test-node` does first): missing ones fail the tests.
const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const path = require('node:path')
const rill = require('..')
const thrift = require('../thrift')
const fixture = require('./fixtures/kitex_echo_server')
const { kitexBin, startListening } = require('./fixtures/kitex')

const { status } = rill
const ECHO_THRIFT = fixture.thriftIdlPath()
const idl = thrift.load(ECHO_THRIFT)
const TestService = idl.services.TestService
const PROTOCOLS = ['grpc', 'ttheader']
const ERROR_MESSAGE = 'matrix error: 100% ünïcødé ✓'

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

function payloads (msgs) { return msgs.map((m) => m.payload.toString()) }

function assertBiz (err, code, message, extra) {
  assert.ok(err, 'the call failed')
  assert.ok(err instanceof rill.BizStatusError, `a BizStatusError, got ${err && err.constructor.name}: ${err && err.message}`)
  assert.ok(err instanceof rill.RpcError)
  assert.equal(err.code, status.INTERNAL)
  assert.equal(err.bizCode, code)
  assert.equal(err.bizMessage, message)
  assert.deepEqual({ ...err.bizExtra }, extra)
}

// ------------------------------------------------------------------ the IDL as loaded

describe('thrift.load', () => {
  test('echo.thrift: paths from namespace go, modes from streaming.mode', () => {
    assert.equal(idl.package, 'echo')
    assert.equal(TestService.fullName, 'echo.TestService')
    const table = Object.values(TestService.methods).map((m) => [m.name, m.path, m.mode, m.shape, m.requestStream, m.responseStream])
    assert.deepEqual(table, [
      ['PingPong', '/echo.TestService/PingPong', 'pingpong', rill.SHAPE.UNARY, false, false],
      ['Echo', '/echo.TestService/Echo', 'bidirectional', rill.SHAPE.BIDI, true, true],
      ['EchoClient', '/echo.TestService/EchoClient', 'client', rill.SHAPE.CLIENT_STREAMING, true, false],
      ['EchoServer', '/echo.TestService/EchoServer', 'server', rill.SHAPE.SERVER_STREAMING, false, true]
    ])
    assert.equal(TestService.methods.Echo.requestType, 'Request')
    assert.equal(TestService.methods.Echo.responseType, 'Response')
    assert.deepEqual(TestService.methods.EchoServer.annotations, { 'streaming.mode': 'server' })
  })

  test('the bytes are Kitex\'s (WIRE.md): bare structs on streams, args/result on PingPong', () => {
    // Request{payload: "hi", count: 5}: field 1 binary, field 2 i32, STOP.
    const req = Buffer.from('0b00010000000268690800020000000500', 'hex')
    assert.deepEqual(TestService.methods.EchoServer.encodeRequest({ payload: Buffer.from('hi'), count: 5 }), req)
    const got = TestService.methods.EchoServer.decodeRequest(req)
    assert.deepEqual([got.payload.toString(), got.count], ['hi', 5])
    // PingPong_args{1: req} around it; PingPong_result{0: success}.
    const args = Buffer.concat([Buffer.from('0c0001', 'hex'), req, Buffer.from('00', 'hex')])
    assert.deepEqual(TestService.methods.PingPong.encodeRequest({ req: { payload: Buffer.from('hi'), count: 5 } }), args)
    const result = Buffer.from('0c00000b0001000000026869' + '0000', 'hex')
    assert.deepEqual(TestService.methods.PingPong.encodeResponse({ success: { payload: Buffer.from('hi') } }), result)
  })

  test('package and methodPath override the paths', () => {
    assert.equal(thrift.load(ECHO_THRIFT, { package: 'other' }).services.TestService.methods.Echo.path, '/other.TestService/Echo')
    const custom = thrift.load(ECHO_THRIFT, { methodPath: (m) => `/${m.service}/${m.method}` })
    assert.equal(custom.services.TestService.methods.EchoServer.path, '/TestService/EchoServer')
    assert.equal(thrift.parse('namespace go a.b.calc\nservice S { void Ping() }').services.S.methods.Ping.path, '/calc.S/Ping')
    assert.equal(thrift.parse('service S { void Ping() }', { filename: 'nons.thrift' }).services.S.methods.Ping.path, '/nons.S/Ping')
  })

  test('an IDL Kitex cannot stream is refused as it loads', () => {
    assert.throws(() => thrift.parse('struct R { 1: i32 a }\nservice S { R M(1: R r) (streaming.mode="sideways") }'), /unknown streaming.mode "sideways"/)
    assert.throws(() => thrift.parse('struct R { 1: i32 a }\nservice S { R M(1: R r, 2: R s) (streaming.mode="server") }'), /exactly one argument/)
    assert.throws(() => thrift.parse('struct R { 1: i32 a }\nservice S { R M(1: i32 r) (streaming.mode="bidirectional") }'), /must be a struct/)
    assert.throws(() => thrift.parse('service S { void M() (streaming.mode="client") }'), /exactly one argument/)
    assert.throws(() => thrift.load(path.join(__dirname, 'no-such.thrift')))
  })

  test('without thriftrw the binding loads, and the Thrift API says what to install', () => {
    const script = `
      const Module = require('node:module')
      const resolve = Module._resolveFilename
      Module._resolveFilename = function (req, ...rest) {
        if (req === 'thriftrw') { const e = new Error("Cannot find module 'thriftrw'"); e.code = 'MODULE_NOT_FOUND'; throw e }
        return resolve.call(this, req, ...rest)
      }
      const rill = require(${JSON.stringify(path.join(__dirname, '..'))})
      const thrift = require(${JSON.stringify(path.join(__dirname, '..', 'thrift'))})
      if (typeof rill.Channel !== 'function') throw new Error('no Channel')
      try { thrift.load(${JSON.stringify(ECHO_THRIFT)}) } catch (e) { console.log(e.code + ' ' + e.message); process.exit(0) }
      process.exit(3)`
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /^RILLRPC_THRIFTRW_MISSING .*npm install thriftrw@3\.12\.0/)
  })
})

// ------------------------------------------------- the echo checks, against any server

/** PingPong, the three streams, metadata and biz status on a client of TestService. */
function echoChecks (name, addr) {
  for (const protocol of PROTOCOLS) {
    describe(`${name} over ${protocol}`, () => {
      let channel
      let client
      before(() => {
        channel = new rill.Channel(addr(), { protocol, authority: 'echo' })
        client = new thrift.Client(channel, TestService)
      })
      after(() => channel.close())

      test('PingPong', async () => {
        for (const p of [Buffer.from('matrix\x00\xffping', 'latin1'), Buffer.alloc(0)]) {
          const r = await client.PingPong({ payload: p })
          assert.deepEqual(r.payload, p)
        }
        // The lowerCamel alias is the same method.
        assert.equal((await client.pingPong({ payload: Buffer.from('x') })).payload.toString(), 'x')
      })

      test('server streaming', async () => {
        const { got, err } = await drain(client.EchoServer({ payload: Buffer.from('stream'), count: 5 }))
        assert.equal(err, null)
        assert.deepEqual(payloads(got), Array(5).fill('stream'))
      })

      test('client streaming', async () => {
        const call = client.EchoClient()
        for (const n of [1, 10, 100, 70000]) call.write({ payload: Buffer.alloc(n, 'c') })
        call.end()
        assert.equal((await call.response).payload.toString(), '70111')
      })

      test('bidi, one answer per request', async () => {
        const call = client.Echo()
        const it = call[Symbol.asyncIterator]()
        for (let i = 0; i < 5; i++) {
          call.write({ payload: Buffer.from(`bidi-${i}`) })
          const { value, done } = await it.next()
          assert.equal(done, false)
          assert.equal(value.payload.toString(), `bidi-${i}`)
        }
        call.end()
        assert.equal((await it.next()).done, true)
      })

      test('metainfo comes back in headers and trailers', async () => {
        const metadata = { 'rpc-transit-echo-key': 'value', 'rpc-persist-echo-persist-key': 'persist value' }
        const p = client.PingPong({ payload: Buffer.from('meta') }, { metadata })
        assert.equal((await p).payload.toString(), 'meta')
        const want = (md) => ({ 'rpc-transit-echo-key': md['rpc-transit-echo-key'], 'rpc-persist-echo-persist-key': md['rpc-persist-echo-persist-key'] })
        assert.deepEqual(want(await p.trailers), metadata)
        if (protocol === 'grpc') assert.deepEqual(want(await p.headers), metadata)
        const s = client.EchoServer({ payload: Buffer.from('meta'), count: 1 }, { metadata })
        assert.deepEqual(want(await s.headers), metadata)
        const { got, err } = await drain(s)
        assert.equal(err, null)
        assert.equal(got.length, 1)
        assert.deepEqual(want(await s.trailers), metadata)
      })

      test('a biz status error ends PingPong, a stream after an answer, a stream before any', async () => {
        const bad = { payload: Buffer.from(ERROR_MESSAGE), count: -5 }
        const extra = { 'echo-count': '-5' }
        await assert.rejects(client.PingPong(bad), (e) => { assertBiz(e, 5, ERROR_MESSAGE, extra); return true })

        const call = client.Echo()
        const it = call[Symbol.asyncIterator]()
        call.write({ payload: Buffer.from('bidi-0') })
        assert.equal((await it.next()).value.payload.toString(), 'bidi-0')
        call.write(bad)
        await assert.rejects(it.next(), (e) => { assertBiz(e, 5, ERROR_MESSAGE, extra); return true })

        const { got, err } = await drain(client.EchoServer(bad))
        assert.equal(got.length, 0)
        assertBiz(err, 5, ERROR_MESSAGE, extra)

        const cs = client.EchoClient()
        cs.write({ payload: Buffer.from('one') })
        cs.end({ payload: Buffer.from('x'), count: -7 })
        await assert.rejects(cs.response, (e) => { assertBiz(e, 7, 'x', { 'echo-count': '-7' }); return true })
      })

      test('a cancelled stream fails, and the next call works', async () => {
        const call = client.Echo()
        const it = call[Symbol.asyncIterator]()
        call.write({ payload: Buffer.from('cancel-0') })
        assert.equal((await it.next()).value.payload.toString(), 'cancel-0')
        call.cancel()
        await assert.rejects(it.next(), (e) => e.code === status.CANCELLED)
        const { got, err } = await drain(client.EchoServer({ payload: Buffer.from('after-cancel'), count: 1 }))
        assert.equal(err, null)
        assert.deepEqual(payloads(got), ['after-cancel'])
      })
    })
  }
}

// ------------------------------------------------------ rillrpc client, rillrpc server

describe('rillrpc client and server', () => {
  let echo
  before(() => { echo = fixture.start() })
  after(() => echo.server.close())
  echoChecks('the Node echo server', () => echo.address)
})

// Declared exceptions, several arguments, void, a unary-mode function, unknown methods.
const CALC_IDL = `
namespace go rill.test.calc

exception DivByZero { 1: string message, 2: i32 dividend }
exception Overflow { 1: string what }
struct Pair { 1: i32 a, 2: i32 b }

service Calc {
  i32 Div(1: i32 a, 2: i32 b) throws (1: DivByZero zero, 2: Overflow overflow),
  void Ping(),
  string Join(1: list<string> parts, 2: string sep),
  Pair Swap(1: Pair p) (streaming.mode="unary"),
  Pair Count(1: Pair p) (streaming.mode="server"),
}
`
// The same service as a client sees it with methods the server lacks.
const CALC_CLIENT_IDL = CALC_IDL.replace('service Calc {', `service Calc {
  i32 Missing(1: i32 a),
  Pair MissingStream(1: Pair p) (streaming.mode="bidirectional"),`)

describe('rillrpc/thrift PingPong semantics', () => {
  const calcIdl = thrift.parse(CALC_IDL)
  const Calc = calcIdl.services.Calc
  const CalcClient = thrift.parse(CALC_CLIENT_IDL).services.Calc
  let server
  let addr
  let pings = 0
  before(() => {
    server = new rill.Server()
    thrift.addService(server, Calc, {
      div (call) {
        const { a, b } = call.args
        if (b === 0) throw new thrift.ThriftException('DivByZero', { message: `${a} / 0`, dividend: a })
        if (a === -2147483648 && b === -1) throw new calcIdl.types.Overflow({ what: 'i32' })
        if (b === 7) throw new Error('seven is not allowed')
        return Math.trunc(a / b)
      },
      Ping () { pings++ },
      Join (call, callback) { callback(null, call.args.parts.join(call.args.sep)) },
      Swap (call) { return { a: call.request.b, b: call.request.a } },
      async Count (call) {
        for (let i = call.request.a; i < call.request.b; i++) call.write({ a: i, b: call.request.b })
      }
    })
    addr = `127.0.0.1:${server.listen()}`
  })
  after(() => server.close())

  for (const protocol of PROTOCOLS) {
    describe(`over ${protocol}`, () => {
      let client
      before(() => { client = new thrift.Client(new rill.Channel(addr, { protocol }), CalcClient) })
      after(() => client.close())

      test('arguments in order, the value back', async () => {
        assert.equal(await client.Div(7, 2), 3)
        assert.equal(await client.Join(['a', 'b', 'c'], '-'), 'a-b-c')
        assert.equal(await client.Ping(), undefined)
        assert.ok(pings > 0)
        const s = await client.Swap({ a: 1, b: 2 })
        assert.deepEqual([s.a, s.b], [2, 1])
        // Call options after the arguments.
        assert.equal(await client.Div(9, 3, { timeout: 10000, metadata: { 'x-k': 'v' } }), 3)
      })

      test('a declared exception travels in the result and rejects as a ThriftException', async () => {
        await assert.rejects(client.Div(5, 0), (e) => {
          assert.ok(e instanceof thrift.ThriftException)
          assert.equal(e.exception, 'DivByZero')
          assert.equal(e.message, '5 / 0')
          assert.equal(e.dividend, 5)
          assert.equal(e.value.dividend, 5)
          return true
        })
        // An instance of the exception type works as well.
        await assert.rejects(client.Div(-2147483648, -1), (e) => e instanceof thrift.ThriftException && e.exception === 'Overflow' && e.what === 'i32')
      })

      test('another error ends the call with a status', async () => {
        await assert.rejects(client.Div(1, 7), (e) => {
          assert.ok(e instanceof rill.RpcError)
          assert.ok(!(e instanceof thrift.ThriftException))
          assert.match(e.details, /seven is not allowed/)
          return true
        })
      })

      test('a stream of a unary-annotated service', async () => {
        const { got, err } = await drain(client.Count({ a: 2, b: 5 }))
        assert.equal(err, null)
        assert.deepEqual(got.map((p) => p.a), [2, 3, 4])
      })

      test('an unknown method is UNIMPLEMENTED', async () => {
        await assert.rejects(client.Missing(1), (e) => e.code === status.UNIMPLEMENTED)
        const call = client.MissingStream()
        call.end({ a: 1 })
        const { err } = await drain(call)
        assert.ok(err)
        assert.equal(err.code, status.UNIMPLEMENTED)
      })
    })
  }

  test('a Thrift method refuses a protobuf call', async () => {
    const ch = new rill.Channel(addr)
    try {
      await assert.rejects(ch.unary(Calc.methods.Div.path, Buffer.alloc(1), { contentSubtype: 'proto' }), (e) => e.code === status.INVALID_ARGUMENT || e.code === status.INTERNAL)
      const s = ch.serverStreaming(Calc.methods.Count.path, Calc.methods.Count.encodeRequest({ a: 0, b: 1 }), { contentSubtype: 'proto' })
      const { err } = await drain(s)
      assert.equal(err && err.code, status.INVALID_ARGUMENT)
    } finally {
      ch.close()
    }
  })
})

// --------------------------------------------------------- rillrpc client, Kitex server

/** Spawns a program that prints "listening on HOST:PORT"; resolves to { proc, address }. */
describe('rillrpc client, Kitex server', () => {
  let kitex
  before(async () => { kitex = await startListening(kitexBin('kitex-server'), ['--port', '0']) })
  after(() => { if (kitex) kitex.proc.kill() })
  echoChecks('kitex-server', () => kitex.address)
})

// --------------------------------------------------------- Kitex client, rillrpc server

/** Runs kitex-client to its end: { code, stdout, pass, fail, skip }. */
function runKitexClient (args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(kitexBin('kitex-client'), args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d) => { stdout += d })
    proc.stderr.on('data', (d) => { stderr += d })
    proc.once('error', reject)
    proc.once('exit', (code) => {
      const lines = stdout.split('\n')
      const names = (w) => lines.filter((l) => l.startsWith(w + ' ')).map((l) => l.slice(w.length + 1).split(':')[0])
      resolve({ code, stdout, stderr, pass: names('PASS'), fail: names('FAIL'), skip: names('SKIP') })
    })
  })
}

describe('Kitex client, rillrpc server', () => {
  let echo
  before(() => { echo = fixture.start() })
  after(() => echo.server.close())

  // deadline: a 300 ms deadline on calls the server answers after `sleep:<ms>`.
  const ALL = ['unary', 'server_streaming', 'client_streaming', 'bidi', 'error_status', 'metadata', 'cancel', 'deadline']
  const runs = [
    [['--transport', 'grpc'], ALL],
    [['--transport', 'grpc', '--api', 'classic'], ALL],
    [['--transport', 'ttheader'], ALL],
    [['--transport', 'pingpong', '--pingpong', 'ttheader'], ['unary', 'error_status', 'metadata', 'deadline']],
    // Framed and Buffered (a bare TMessage) carry no TTHeader: no metainfo, no biz status.
    [['--transport', 'pingpong', '--pingpong', 'framed'], ['unary', 'deadline']],
    [['--transport', 'pingpong', '--pingpong', 'buffered'], ['unary', 'deadline']]
  ]
  for (const [args, want] of runs) {
    test(`kitex-client ${args.join(' ')}`, async () => {
      const r = await runKitexClient(['--target', echo.address, ...args])
      const out = `${r.stdout}${r.stderr}`
      assert.deepEqual(r.fail, [], out)
      assert.equal(r.code, 0, out)
      assert.deepEqual(r.pass, want, out)
      assert.deepEqual(r.skip, ALL.filter((c) => !want.includes(c)), out)
    })
  }
})
