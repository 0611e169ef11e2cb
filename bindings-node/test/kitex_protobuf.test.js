'use strict'
// A client from a proto-loader service definition on a `ttheader` channel: its unary
// methods go as Kitex's Protobuf PingPong (KitexProtobuf in TTHeaderFramed, what a Kitex
// client of a protobuf service sends by default), against kitex-server --idl protobuf
// (real Kitex v0.16.3). Its streaming methods are refused: TTHeader Streaming carries
// Thrift only.
// Regression: makeClient used to leave the payload unnamed, so a `ttheader` channel sent
// its protobuf bytes as Thrift, which Kitex's protobuf server cannot read.
const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const rill = require('..')
const { service } = require('./peer')
const { kitexBin, startListening } = require('./fixtures/kitex')

const { status } = rill
const REFUSED = 'TTHeader Streaming carries Thrift only'

let kitex
let ch
let client

before(async () => {
  kitex = await startListening(kitexBin('kitex-server'), ['--port', '0', '--idl', 'protobuf'])
  ch = new rill.Channel(`http://${kitex.address}`, { protocol: 'ttheader', authority: 'echo' })
  client = rill.makeClient(ch, service)
})

after(() => {
  if (ch) ch.close()
  if (kitex) kitex.proc.kill()
})

test('unary calls are Kitex Protobuf PingPong', async () => {
  for (const payload of [Buffer.from('kitex\x00\xffprotobuf', 'latin1'), Buffer.alloc(0)]) {
    const r = await client.PingPong({ payload })
    assert.deepEqual(r.payload, payload)
  }
  const many = await Promise.all(Array.from({ length: 50 }, (_, i) => client.PingPong({ payload: Buffer.from(`${i}`) })))
  assert.deepEqual(many.map((r) => r.payload.toString()), Array.from({ length: 50 }, (_, i) => `${i}`))
})

test('a biz status from Kitex', async () => {
  // kitex-server answers count < 0 with a biz status error: code -count, the payload as its message.
  await assert.rejects(client.PingPong({ payload: Buffer.from('no good'), count: -7 }), (err) => {
    assert.ok(err instanceof rill.BizStatusError, `${err && err.constructor.name}: ${err && err.message}`)
    assert.equal(err.bizCode, 7)
    assert.equal(err.bizMessage, 'no good')
    assert.deepEqual({ ...err.bizExtra }, { 'echo-count': '-7' })
    return true
  })
})

test('streaming methods are refused', async () => {
  const refused = (err) => {
    assert.equal(err.code, status.UNIMPLEMENTED, err.message)
    assert.ok(err.message.includes(REFUSED), err.message)
    return true
  }
  await assert.rejects(async () => {
    for await (const m of client.EchoServer({ payload: Buffer.from('x'), count: 2 })) assert.fail(`a message: ${m}`)
  }, refused)
  const bidi = client.Echo()
  bidi.end({ payload: Buffer.from('x') })
  await assert.rejects(async () => {
    for await (const m of bidi) assert.fail(`a message: ${m}`)
  }, refused)
})
