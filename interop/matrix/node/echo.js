'use strict'
// What the matrix's Node programs share: the rillrpc package and the peers, resolved from
// bindings-node (whose npm install brings @grpc/grpc-js and @grpc/proto-loader), the echo
// service loaded from $RILL_SHARED/idl/echo.proto, and the inputs of the six checks.
const path = require('node:path')
const fs = require('node:fs')

const pkg = process.env.RILL_NODE_PKG || path.join(__dirname, '..', '..', '..', 'bindings-node')
const fromPkg = (name) => require(require.resolve(name, { paths: [pkg] }))

function protoPath () {
  const shared = process.env.RILL_SHARED || path.join(__dirname, '..', '..', '..', '..', 'shared')
  const p = path.join(shared, 'idl', 'echo.proto')
  if (!fs.existsSync(p)) throw new Error(`echo.proto not found at ${p} (set RILL_SHARED)`)
  return p
}

const protoLoader = fromPkg('@grpc/proto-loader')
const def = protoLoader.loadSync(protoPath(), { keepCase: true, longs: Number, defaults: true })
const service = def['echo.TestService']

module.exports = {
  pkg,
  rill: () => require(pkg),
  grpc: () => fromPkg('@grpc/grpc-js'),
  service,
  UNARY_PAYLOAD: Buffer.from('matrix\x00\xffping', 'latin1'),
  STREAM_SIZES: [1, 10, 100, 70000],
  // The client_streaming burst: BURST_MESSAGES messages of BURST_SIZE bytes in one call. A
  // sender that writes each in a DATA frame of its own (23 bytes) gets the connection closed
  // by tonic's h2 server (0.4.20) when its handler falls behind: GOAWAY
  // (ENHANCE_YOUR_CALM, "too_many_data_frames"), issue 17.
  BURST_MESSAGES: 30000,
  BURST_SIZE: 16,
  BIN_VALUE: Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x01]),
  CALL_TIMEOUT_MS: 20000,
  // Percent-encoded in grpc-message on the wire: '%' and the non-ASCII bytes must survive.
  ERROR_MESSAGE: 'matrix error: 100% ünïcødé ✓',
  // The response header in which a server names the protocol it saw the call come in on
  // ('grpc', 'grpc-web', 'connect'): every server that can tell reports it on a call with
  // echo- metadata, and the clients hold it to the protocol they were told to speak; the
  // gRPC-only peers' servers (grpcio, grpc-js, grpc-go, tonic) cannot tell.
  PROTOCOL_HEADER: 'echo-protocol'
}
