'use strict'
// An echo server on @grpc/grpc-js or on rillrpc, for the bench:
//   node server.js --impl grpc-js|rill [--port N] [--pkg BINDINGS_NODE_DIR]
// prints "listening on HOST:PORT".
// Both speak raw Buffers with the same hand codec and write the same pre-encoded reply.
const path = require('node:path')
const { encodeResponse, decodeRequest } = require('./codec')

const M = '/echo.TestService/'
const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
// The rillrpc package (its built addon) to run: another build's with --pkg (bench.js
// --baseline). grpc-js always comes from this tree's bindings-node.
const here = path.join(__dirname, '..', '..', 'bindings-node')
const pkg = path.resolve(opt('--pkg', here))
const impl = opt('--impl', 'rill')
const port = Number(opt('--port', '0'))
const total = (n) => encodeResponse(Buffer.from(String(n)))

if (impl === 'grpc-js') {
  const grpc = require(require.resolve('@grpc/grpc-js', { paths: [here] }))
  const id = (x) => x
  const def = (requestStream, responseStream, name) => ({
    path: M + name, requestStream, responseStream, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id
  })
  const service = { PingPong: def(false, false, 'PingPong'), Echo: def(true, true, 'Echo'), EchoClient: def(true, false, 'EchoClient'), EchoServer: def(false, true, 'EchoServer') }
  const server = new grpc.Server()
  server.addService(service, {
    PingPong (call, cb) { cb(null, encodeResponse(decodeRequest(call.request).payload)) },
    Echo (call) {
      call.on('data', (m) => call.write(encodeResponse(decodeRequest(m).payload)))
      call.on('end', () => call.end())
    },
    EchoClient (call, cb) {
      let n = 0
      call.on('data', (m) => { n += decodeRequest(m).payload.length })
      call.on('end', () => cb(null, total(n)))
    },
    EchoServer (call) {
      const req = decodeRequest(call.request)
      const reply = encodeResponse(req.payload)
      let i = 0
      let stop = false
      call.on('cancelled', () => { stop = true })
      const pump = () => {
        while (i < req.count && !stop) {
          i++
          if (!call.write(reply)) return void call.once('drain', pump)
        }
        if (!stop) call.end()
      }
      pump()
    }
  })
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => {
    if (e) throw e
    console.log(`listening on 127.0.0.1:${p}`)
  })
} else {
  const rill = require(pkg)
  const server = new rill.Server()
  server.unary(M + 'PingPong', (call) => encodeResponse(decodeRequest(call.request).payload))
  server.bidi(M + 'Echo', (call) => {
    call.on('data', (m) => call.write(encodeResponse(decodeRequest(m).payload)))
    call.on('end', () => call.end())
  })
  server.clientStreaming(M + 'EchoClient', async (call) => {
    let n = 0
    for await (const m of call) n += decodeRequest(m).payload.length
    return total(n)
  })
  server.serverStreaming(M + 'EchoServer', (call) => {
    const req = decodeRequest(call.request)
    const reply = encodeResponse(req.payload)
    let i = 0
    const pump = () => {
      while (i < req.count && !call.cancelled) {
        i++
        if (!call.write(reply)) return void call.once('drain', pump)
      }
      if (!call.cancelled) call.end()
    }
    pump()
  })
  const p = server.listen(`127.0.0.1:${port}`)
  console.log(`listening on 127.0.0.1:${p}`)
}
