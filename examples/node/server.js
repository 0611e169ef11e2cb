'use strict'
// The echo service (echo.proto's echo.TestService) on a rillrpc server, every call shape:
//   node server.js [PORT]      (default 50051; then: node client.js)
// PingPong also shows metadata (the client's x-greeting comes back as a header, and a
// trailer names the server) and an error (a request whose payload is "error").
const { Server, RpcError, status } = require('rillrpc')
const { service } = require('./echo')

const server = new Server()
server.addService(service, {
  async PingPong (call) {
    const payload = Buffer.from(call.request.payload)
    if (payload.toString() === 'error') throw new RpcError(status.INVALID_ARGUMENT, 'the request asked for an error')
    const greeting = call.metadata['x-greeting']
    if (greeting !== undefined) call.sendHeaders({ 'x-greeting': greeting })
    call.setTrailers({ 'x-served-by': 'rillrpc-node' })
    return { payload }
  },
  async Echo (call) {
    for await (const req of call) call.write({ payload: req.payload })
  },
  async EchoClient (call) {
    let total = 0
    for await (const req of call) total += req.payload.length
    return { payload: Buffer.from(String(total)) }
  },
  async EchoServer (call) {
    for (let i = 0; i < call.request.count; i++) call.write({ payload: call.request.payload })
  }
})
const port = server.listen(`127.0.0.1:${process.argv[2] || 50051}`)
console.log(`listening on 127.0.0.1:${port}`)
