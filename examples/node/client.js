'use strict'
// A rillrpc client of the echo service (echo.proto's echo.TestService), every call shape:
//   node client.js [HOST:PORT]      (default 127.0.0.1:50051)
// Runs against any echo server of the examples (Rust, Python, Node, C); exits 1 on a wrong
// answer.
const assert = require('node:assert')
const { Channel, makeClient, RpcError, status } = require('rillrpc')
const { service } = require('./echo')

function check (what, got, want) {
  assert.deepStrictEqual(got, want, what)
  console.log(`${what}: ${JSON.stringify(got)}`)
}

const text = (m) => Buffer.from(m.payload).toString()

async function main (target) {
  const ch = new Channel(`http://${target}`)
  const client = makeClient(ch, service, { timeout: 10000 })

  // Unary, with metadata: x-greeting comes back as a header; the status carries a trailer.
  const call = client.PingPong({ payload: Buffer.from('ping') }, { metadata: { 'x-greeting': 'hello' } })
  check('unary', text(await call), 'ping')
  check('header x-greeting', (await call.headers)['x-greeting'], 'hello')
  console.log(`trailer x-served-by: ${JSON.stringify((await call.trailers)['x-served-by'])}`)

  // Server streaming: `count` responses, a Readable.
  const got = []
  for await (const m of client.EchoServer({ payload: Buffer.from('tick'), count: 3 })) got.push(text(m))
  check('server streaming', got, ['tick', 'tick', 'tick'])

  // Client streaming: a Writable; the answer is the number of payload bytes sent.
  const upload = client.EchoClient()
  for (const p of ['ab', 'cde', 'f']) upload.write({ payload: Buffer.from(p) })
  upload.end()
  check('client streaming', text(await upload.response), '6')

  // Bidirectional: a Duplex; send and receive as they come.
  const bidi = client.Echo()
  const replies = bidi[Symbol.asyncIterator]()
  const echoed = []
  for (const p of ['one', 'two', 'three']) {
    bidi.write({ payload: Buffer.from(p) })
    echoed.push(text((await replies.next()).value))
  }
  bidi.end()
  check('bidi', echoed, ['one', 'two', 'three'])
  check('bidi end', (await replies.next()).done, true)

  // An error: the server ends the call with INVALID_ARGUMENT and a message.
  try {
    await client.PingPong({ payload: Buffer.from('error') })
    throw new Error('error: the call succeeded')
  } catch (e) {
    if (!(e instanceof RpcError)) throw e
    check('error', e.code, status.INVALID_ARGUMENT)
    console.log(`error message: ${JSON.stringify(e.details)}`)
  }
  ch.close()
  console.log('all ok')
}

main(process.argv[2] || '127.0.0.1:50051').catch((e) => {
  console.error(`client: ${e.message}`)
  process.exit(1)
})
