'use strict'
// The Node echo servers of the matrix, on rillrpc or on @grpc/grpc-js:
//   node server.js --impl rill|grpc-js [--port N]     prints "listening on 127.0.0.1:PORT"
// Conventions: a request with count < 0 ends the call with status code -count and the
// payload as message; request metadata whose key starts with "echo-" comes back in the
// response headers and trailers, and with it the rillrpc server's headers name the protocol
// the call came in on (echo-protocol; grpc-js's speaks gRPC only).
const { service, rill, grpc, PROTOCOL_HEADER } = require('./echo')

const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
const impl = opt('--impl', 'rill')
const port = Number(opt('--port', '0'))

function rillServer () {
  const r = rill()
  const echoMd = (md) => Object.fromEntries(Object.entries(md).filter(([k]) => k.startsWith('echo-')))
  const start = (call) => {
    const md = echoMd(call.metadata)
    if (Object.keys(md).length) {
      // The headers also name the protocol the call came in on, for the clients to hold to
      // theirs.
      call.sendHeaders({ ...md, [PROTOCOL_HEADER]: call.protocol })
      call.setTrailers(md)
    }
  }
  const check = (call, req) => {
    if (req.count < 0) throw new r.RpcError(-req.count, Buffer.from(req.payload).toString(), echoMd(call.metadata))
  }
  const server = new r.Server()
  server.addService(service, {
    async PingPong (call) {
      start(call)
      check(call, call.request)
      return { payload: call.request.payload }
    },
    async EchoServer (call) {
      start(call)
      check(call, call.request)
      for (let i = 0; i < call.request.count; i++) {
        if (!call.write({ payload: call.request.payload })) await new Promise((resolve) => call.once('drain', resolve))
      }
    },
    async EchoClient (call) {
      start(call)
      let total = 0
      for await (const req of call) {
        check(call, req)
        total += req.payload.length
      }
      return { payload: Buffer.from(String(total)) }
    },
    async Echo (call) {
      start(call)
      for await (const req of call) {
        check(call, req)
        if (!call.write({ payload: req.payload })) await new Promise((resolve) => call.once('drain', resolve))
      }
    }
  })
  const p = server.listen(`127.0.0.1:${port}`)
  console.log(`listening on 127.0.0.1:${p}`)
}

function grpcJsServer () {
  const g = grpc()
  const echoMd = (md) => {
    const out = new g.Metadata()
    for (const k of Object.keys(md.getMap())) {
      if (k.startsWith('echo-')) for (const v of md.get(k)) out.add(k, v)
    }
    return out
  }
  const start = (call) => {
    call.sendMetadata(echoMd(call.metadata))
  }
  const failure = (call, req) => req.count < 0
    ? { code: -req.count, details: Buffer.from(req.payload).toString(), metadata: echoMd(call.metadata) }
    : null
  const server = new g.Server()
  server.addService(service, {
    PingPong (call, cb) {
      start(call)
      const f = failure(call, call.request)
      if (f) return cb(f)
      cb(null, { payload: call.request.payload }, echoMd(call.metadata))
    },
    EchoServer (call) {
      start(call)
      const f = failure(call, call.request)
      if (f) return call.emit('error', f)
      let i = 0
      const pump = () => {
        while (i < call.request.count) {
          i++
          if (!call.write({ payload: call.request.payload })) return void call.once('drain', pump)
        }
        call.end(echoMd(call.metadata))
      }
      pump()
    },
    EchoClient (call, cb) {
      start(call)
      let total = 0
      let failed = false
      call.on('data', (req) => {
        const f = failure(call, req)
        if (f && !failed) { failed = true; cb(f) }
        total += req.payload.length
      })
      call.on('end', () => { if (!failed) cb(null, { payload: Buffer.from(String(total)) }, echoMd(call.metadata)) })
    },
    Echo (call) {
      start(call)
      call.on('data', (req) => {
        const f = failure(call, req)
        if (f) return call.emit('error', f)
        call.write({ payload: req.payload })
      })
      call.on('end', () => call.end(echoMd(call.metadata)))
    }
  })
  server.bindAsync(`127.0.0.1:${port}`, g.ServerCredentials.createInsecure(), (e, p) => {
    if (e) {
      console.error(`grpc-js echo server: ${e.message}`)
      process.exit(1)
    }
    console.log(`listening on 127.0.0.1:${p}`)
  })
}

if (impl === 'rill') rillServer()
else if (impl === 'grpc-js') grpcJsServer()
else {
  console.error(`--impl must be rill or grpc-js, not ${impl}`)
  process.exit(2)
}
