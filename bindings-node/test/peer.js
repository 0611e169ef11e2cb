'use strict'
// The echo service of shared/idl/echo.proto on @grpc/grpc-js (the real peer), plus helpers
// shared by the suites.
const path = require('node:path')
const fs = require('node:fs')
const grpc = require('@grpc/grpc-js')
const protoLoader = require('@grpc/proto-loader')

function protoPath () {
  const candidates = [
    process.env.RILL_SHARED && path.join(process.env.RILL_SHARED, 'idl', 'echo.proto'),
    path.join(__dirname, '..', '..', '..', 'shared', 'idl', 'echo.proto'),
    path.join(__dirname, 'echo.proto')
  ].filter(Boolean)
  for (const p of candidates) if (fs.existsSync(p)) return p
  throw new Error('echo.proto not found (set RILL_SHARED)')
}

const pkgDef = protoLoader.loadSync(protoPath(), { keepCase: true, longs: Number, defaults: true })
const service = pkgDef['echo.TestService']
const EchoClient = grpc.makeGenericClientConstructor(service, 'TestService')

const M = {
  PingPong: '/echo.TestService/PingPong',
  Echo: '/echo.TestService/Echo',
  EchoClient: '/echo.TestService/EchoClient',
  EchoServer: '/echo.TestService/EchoServer'
}

const encReq = (o) => service.PingPong.requestSerialize(o)
const decReq = (b) => service.PingPong.requestDeserialize(b)
const encResp = (o) => service.PingPong.responseSerialize(o)
const decResp = (b) => service.PingPong.responseDeserialize(b)

function echoMetadata (md) {
  const out = new grpc.Metadata()
  for (const [k, vs] of Object.entries(md.getMap())) {
    if (k.startsWith('echo-')) for (const v of md.get(k)) out.add(k, v)
  }
  return out
}

function failIfAsked (req) {
  if (req.count < 0) return { code: -req.count, details: Buffer.from(req.payload).toString() }
  return null
}

/** The echo service on grpc-js. Extra: metadata `sleep-ms` delays the reply. */
function grpcJsEcho (stats = {}) {
  return {
    PingPong (call, cb) {
      call.sendMetadata(echoMetadata(call.metadata))
      const f = failIfAsked(call.request)
      const reply = () => f ? cb({ ...f, metadata: echoMetadata(call.metadata) }) : cb(null, { payload: call.request.payload }, echoMetadata(call.metadata))
      const sleep = Number(call.metadata.get('sleep-ms')[0] || 0)
      if (sleep) setTimeout(reply, sleep)
      else reply()
    },
    EchoServer (call) {
      call.sendMetadata(echoMetadata(call.metadata))
      const f = failIfAsked(call.request)
      if (f) return call.emit('error', { ...f, metadata: echoMetadata(call.metadata) })
      stats.written = 0
      stats.blocked = false
      stats.cancelled = false
      // Per call: grpc-js emits 'cancelled' whenever the stream closes, a normal end included,
      // so a flag shared by concurrent calls stopped a paused pump when another call ended
      // and left its call open forever (the "100 concurrent calls" hang, ~1 run in 20).
      let cancelled = false
      call.on('cancelled', () => { cancelled = true; stats.cancelled = true })
      const n = call.request.count
      const msg = { payload: call.request.payload }
      let i = 0
      const pump = () => {
        while (i < n) {
          if (cancelled) return
          i++
          stats.written = i
          if (!call.write(msg)) {
            stats.blocked = true
            call.once('drain', pump)
            return
          }
        }
        call.end(echoMetadata(call.metadata))
      }
      pump()
    },
    EchoClient (call, cb) {
      call.sendMetadata(echoMetadata(call.metadata))
      let total = 0
      call.on('data', (r) => { total += r.payload.length })
      call.on('end', () => cb(null, { payload: Buffer.from(String(total)) }, echoMetadata(call.metadata)))
    },
    Echo (call) {
      call.sendMetadata(echoMetadata(call.metadata))
      call.on('data', (r) => {
        const f = failIfAsked(r)
        if (f) return call.emit('error', f)
        call.write({ payload: r.payload })
      })
      call.on('end', () => call.end(echoMetadata(call.metadata)))
    }
  }
}

async function startGrpcJs (stats, port = 0) {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 })
  server.addService(service, grpcJsEcho(stats))
  return { server, port: await bindRetrying(server, port) }
}

/** Binds `port`; a port just freed by a killed process may take a moment to come back. */
async function bindRetrying (server, port) {
  for (let i = 0; ; i++) {
    try {
      return await bind(server, port)
    } catch (e) {
      if (port === 0 || i >= 50) throw e
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

async function bind (server, port) {
  return new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => e ? reject(e) : resolve(p)))
}

function grpcJsClient (port) {
  return new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.max_send_message_length': 64 << 20
  })
}

module.exports = { grpc, pkgDef, service, M, encReq, decReq, encResp, decResp, startGrpcJs, grpcJsClient, protoPath, echoMetadata }
