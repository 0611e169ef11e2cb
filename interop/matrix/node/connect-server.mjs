// The connect-node echo server of the matrix:
//   node connect-server.mjs [--port N]     prints "listening on 127.0.0.1:PORT"
// serves echo.TestService with @connectrpc/connect-node's adapter on Node's http2 server
// without TLS (h2c with prior knowledge, as the matrix's clients call), one port answering
// Connect, gRPC-Web and gRPC, until killed. Its packages are pinned by package.json and
// package-lock.json beside it (`npm ci` here; client.js and server.js take theirs from
// bindings-node instead).
//
// The echo service's conventions, as every server of the matrix keeps them (see
// interop/matrix/README.md): a request with count < 0 ends the call with status -count and
// the payload as message; request metadata whose key starts with "echo-" comes back in the
// response headers and trailers, and with it the headers name the protocol the call came in
// on (echo-protocol).
//
// No code generation: @bufbuild/protobuf v2 describes a service by a file descriptor, which
// is built here at run time from $RILL_SHARED/idl/echo.proto by a reader of the few forms
// that file uses (it refuses any other), so the one .proto stays the only source.
import { readFileSync, existsSync } from 'node:fs'
import * as http2 from 'node:http2'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { create, createFileRegistry } from '@bufbuild/protobuf'
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  FileDescriptorSetSchema
} from '@bufbuild/protobuf/wkt'
import { ConnectError } from '@connectrpc/connect'
import { connectNodeAdapter } from '@connectrpc/connect-node'

const args = process.argv.slice(2)
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d }
const port = Number(opt('--port', '0'))

function protoPath () {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const shared = process.env.RILL_SHARED || path.join(here, '..', '..', '..', '..', 'shared')
  const p = path.join(shared, 'idl', 'echo.proto')
  if (!existsSync(p)) throw new Error(`echo.proto not found at ${p} (set RILL_SHARED)`)
  return p
}

const SCALARS = {
  bytes: Type.BYTES,
  string: Type.STRING,
  bool: Type.BOOL,
  int32: Type.INT32,
  int64: Type.INT64,
  uint32: Type.UINT32,
  uint64: Type.UINT64
}

/**
 * A FileDescriptorProto (as an init object) of a proto3 file made of a package, messages
 * of scalar fields and services: what echo.proto is. Anything else is an error, not a guess.
 */
function describeProto (name, text) {
  const src = text.replace(/\/\/[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '')
  const file = { name, syntax: 'proto3', messageType: [], service: [] }
  const top = /\s*(?:syntax\s*=\s*"(\w+)"\s*;|package\s+([\w.]+)\s*;|(message|service)\s+(\w+)\s*\{([^}]*)\})/y
  let m
  let pos = 0
  while ((m = top.exec(src)) !== null) {
    pos = top.lastIndex
    if (m[1] !== undefined && m[1] !== 'proto3') throw new Error(`${name}: syntax ${m[1]}, not proto3`)
    if (m[2] !== undefined) file.package = m[2]
    if (m[3] === 'message') {
      const field = []
      for (const line of m[5].split(';').map((s) => s.trim()).filter(Boolean)) {
        const f = /^(\w+)\s+(\w+)\s*=\s*(\d+)$/.exec(line)
        if (!f || SCALARS[f[1]] === undefined) throw new Error(`${name}: message ${m[4]}: cannot read "${line}"`)
        field.push({ name: f[2], number: Number(f[3]), label: Label.OPTIONAL, type: SCALARS[f[1]], jsonName: f[2].replace(/_(\w)/g, (_, c) => c.toUpperCase()) })
      }
      file.messageType.push({ name: m[4], field })
    } else if (m[3] === 'service') {
      const method = []
      for (const line of m[5].split(';').map((s) => s.trim()).filter(Boolean)) {
        const r = /^rpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)$/.exec(line)
        if (!r) throw new Error(`${name}: service ${m[4]}: cannot read "${line}"`)
        const full = (t) => t.includes('.') ? `.${t}` : `.${file.package}.${t}`
        method.push({ name: r[1], inputType: full(r[3]), outputType: full(r[5]), clientStreaming: !!r[2], serverStreaming: !!r[4] })
      }
      file.service.push({ name: m[4], method })
    }
  }
  const rest = src.slice(pos).trim()
  if (rest !== '') throw new Error(`${name}: cannot read from "${rest.slice(0, 40)}"`)
  return file
}

function loadService () {
  const p = protoPath()
  const text = readFileSync(p, 'utf8')
  const file = describeProto('echo.proto', text)
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [file] }))
  const svc = registry.getService('echo.TestService')
  if (!svc) throw new Error(`${p}: no service echo.TestService`)
  return svc
}

/**
 * The request's echo-* metadata into the response headers and trailers (-bin values as they
 * came, base64); with it, the headers name the protocol the call came in on, for the clients
 * to hold to theirs: the handler context's protocolName, which @connectrpc/connect spells as
 * rillrpc does ('grpc', 'grpc-web', 'connect').
 */
function start (ctx) {
  let echoed = false
  for (const [k, v] of ctx.requestHeader) {
    if (k.toLowerCase().startsWith('echo-')) {
      echoed = true
      ctx.responseHeader.append(k, v)
      ctx.responseTrailer.append(k, v)
    }
  }
  if (echoed) ctx.responseHeader.set('echo-protocol', ctx.protocolName)
}

/** count < 0 asks for status -count with the payload as message. */
function check (req) {
  if (req.count < 0) throw new ConnectError(Buffer.from(req.payload).toString(), -req.count)
}

const impl = {
  async pingPong (req, ctx) {
    start(ctx)
    check(req)
    return { payload: req.payload }
  },
  async * echoServer (req, ctx) {
    start(ctx)
    check(req)
    for (let i = 0; i < req.count; i++) yield { payload: req.payload }
  },
  async echoClient (reqs, ctx) {
    start(ctx)
    let total = 0
    for await (const r of reqs) {
      check(r)
      total += r.payload.length
    }
    return { payload: Buffer.from(String(total)) }
  },
  async * echo (reqs, ctx) {
    start(ctx)
    for await (const r of reqs) {
      check(r)
      yield { payload: r.payload }
    }
  }
}

const TestService = loadService()
const handler = connectNodeAdapter({
  routes: (router) => router.service(TestService, impl),
  grpc: true,
  grpcWeb: true,
  connect: true
})
const server = http2.createServer(handler)
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`)
})
