'use strict'
// Thrift services with no code generation: an IDL loaded at run time (with thriftrw, an
// optional peer dependency) gives client stubs and server registrations that take and give
// plain JS objects, in Thrift Binary, as Kitex speaks it:
//   - a method is `/<package>.<Service>/<Method>`, the package being the last component of
//     the IDL's `namespace go` (Kitex's path over gRPC; over TTHeader the core routes
//     Kitex's service and method names to it);
//   - `(streaming.mode="bidirectional"|"client"|"server")` makes a streaming method, whose
//     messages are the bare request struct (its one argument's type) and the bare response
//     struct; no annotation, or "unary", is a PingPong method, whose request is its args
//     struct and whose answer its result struct (field 0 the value, declared exceptions
//     1..n);
//   - every call says `contentSubtype: 'thrift'` (`application/grpc+thrift` over gRPC; the
//     TTHeader transports carry Thrift anyway).
const path = require('node:path')
const { status, SHAPE, RpcError } = require('./status')
const { Channel } = require('./client')

/** The thriftrw version this binding is built and tested against (package.json pins it). */
const THRIFTRW_VERSION = '3.12.0'

let thriftrw
function thriftrwLib () {
  if (thriftrw) return thriftrw
  try {
    thriftrw = require('thriftrw')
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && /'thriftrw'/.test(e.message)) {
      const err = new Error(`rillrpc's Thrift API needs the thriftrw package, an optional peer dependency: npm install thriftrw@${THRIFTRW_VERSION}`)
      err.code = 'RILLRPC_THRIFTRW_MISSING'
      throw err
    }
    throw e
  }
  return thriftrw
}

/** `streaming.mode` values and the call shapes they make. */
const MODES = Object.freeze({
  unary: SHAPE.UNARY,
  client: SHAPE.CLIENT_STREAMING,
  server: SHAPE.SERVER_STREAMING,
  bidirectional: SHAPE.BIDI
})

/**
 * A declared Thrift exception as a JS Error: what a client rejects with when a PingPong
 * method's result carries one, and what a handler may throw to answer with one (so may a
 * thriftrw instance of the exception type, `idl.types.MyError`). `exception` is the type's
 * name, `value` its fields, which are also copied onto the error.
 */
class ThriftException extends Error {
  constructor (exception, value = {}) {
    const v = value || {}
    super(typeof v.message === 'string' ? v.message : `Thrift exception ${exception}`)
    this.name = 'ThriftException'
    this.exception = exception
    this.value = v
    for (const k of Object.keys(v)) {
      if (k !== 'message' && k !== 'name' && k !== 'stack' && !(k in this)) this[k] = v[k]
    }
  }
}

function lowerCamel (s) { return s.charAt(0).toLowerCase() + s.slice(1) }

/** The package of a file's `namespace go a.b.echo`: `echo`; the file name without it. */
function packageOf (ast, file) {
  const heads = (ast && ast.headers) || []
  const ns = heads.find((h) => h.type === 'Namespace' && h.scope === 'go')
  if (ns) return ns.id.name.split(/[./]/).filter(Boolean).pop()
  return path.basename(file).replace(/\.thrift$/, '')
}

function structCodec (type, what) {
  const s = type && type.surface
  if (!type || !type.rw || !s || typeof s.toBuffer !== 'function' || typeof s.fromBuffer !== 'function') {
    throw new TypeError(`${what} must be a struct (Kitex streams carry one struct each way)`)
  }
  return { type: type.name, encode: (v) => s.toBuffer(v), decode: (b) => s.fromBuffer(b) }
}

/** One function of a service as rillrpc calls it. */
function methodOf (svcName, pkg, f, opts) {
  const annotations = f.annotations || {}
  const modeName = annotations['streaming.mode']
  if (modeName !== undefined && !(modeName in MODES)) {
    throw new TypeError(`${svcName}.${f.name}: unknown streaming.mode "${modeName}" (want one of ${Object.keys(MODES).join(', ')})`)
  }
  const shape = modeName === undefined ? SHAPE.UNARY : MODES[modeName]
  const mpath = typeof opts.methodPath === 'function'
    ? opts.methodPath({ package: pkg, service: svcName, method: f.name })
    : `/${pkg}.${svcName}/${f.name}`
  const args = f.args.fields.map((x) => ({ id: x.id, name: x.name, type: x.valueType.name }))
  const resultFields = f.result.fields
  const success = resultFields.find((x) => x.id === 0)
  const exceptions = resultFields.filter((x) => x.id !== 0).map((x) => ({ id: x.id, name: x.name, type: x.valueType.name, surface: x.valueType.surface }))
  const m = {
    name: f.name,
    service: svcName,
    path: mpath,
    mode: modeName || 'pingpong',
    shape,
    requestStream: shape === SHAPE.CLIENT_STREAMING || shape === SHAPE.BIDI,
    responseStream: shape === SHAPE.SERVER_STREAMING || shape === SHAPE.BIDI,
    oneway: Boolean(f.oneway),
    annotations,
    args,
    returns: success ? success.valueType.name : 'void',
    exceptions: exceptions.map(({ id, name, type }) => ({ id, name, type }))
  }
  if (m.oneway) throw new TypeError(`${svcName}.${f.name}: oneway functions are not supported`)
  if (shape === SHAPE.UNARY) {
    const A = f.args.surface
    const R = f.result.surface
    // Args and result wrappers: what a PingPong call (and Kitex's gRPC unary) carries.
    Object.defineProperties(m, {
      encodeRequest: { value: (argsObj) => A.toBuffer(argsObj || {}) },
      decodeRequest: { value: (b) => A.fromBuffer(b) },
      encodeResponse: { value: (resultObj) => R.toBuffer(resultObj || {}) },
      decodeResponse: { value: (b) => R.fromBuffer(b) },
      _exceptions: { value: exceptions },
      _void: { value: !success }
    })
  } else {
    if (f.args.fields.length !== 1) {
      throw new TypeError(`${svcName}.${f.name}: a streaming function takes exactly one argument (its request struct), not ${f.args.fields.length}`)
    }
    if (!success) throw new TypeError(`${svcName}.${f.name}: a streaming function returns its response struct, not void`)
    if (exceptions.length) throw new TypeError(`${svcName}.${f.name}: a streaming function cannot declare exceptions (Kitex has no result struct on a stream)`)
    const req = structCodec(f.args.fields[0].valueType, `${svcName}.${f.name}'s argument`)
    const res = structCodec(success.valueType, `${svcName}.${f.name}'s return type`)
    m.requestType = req.type
    m.responseType = res.type
    Object.defineProperties(m, {
      encodeRequest: { value: req.encode },
      decodeRequest: { value: req.decode },
      encodeResponse: { value: res.encode },
      decodeResponse: { value: res.decode }
    })
  }
  return m
}

/** The services of a thriftrw model's entry file. */
function build (model, file, opts) {
  const ast = model.asts[model.filename] || model.asts[file]
  const pkg = opts.package != null ? String(opts.package) : packageOf(ast, file)
  const services = {}
  const defs = ((ast && ast.definitions) || []).filter((d) => d.type === 'Service')
  for (const d of defs) {
    const name = d.id.name
    const fns = model.services[name]
    const methods = {}
    for (const fname of Object.keys(fns)) methods[fname] = methodOf(name, pkg, fns[fname], opts)
    services[name] = Object.freeze({ name, package: pkg, fullName: `${pkg}.${name}`, methods })
  }
  return { package: pkg, services, types: model }
}

function modelOptions (opts) {
  // Not strict: Kitex IDLs leave most fields' requiredness unsaid.
  return { strict: false, allowOptionalArguments: true, ...(opts.thriftrw || {}) }
}

/**
 * Loads a Thrift IDL file (and its includes) at run time: `{ package, services, types }`,
 * `services.TestService.methods.Echo` describing each method (path, mode, shape, types).
 * opts: package (overrides the one `namespace go` gives), methodPath({ package, service,
 * method }) → the path a method is called and served at, thriftrw (options for
 * thriftrw's `Thrift`).
 */
function load (file, opts = {}) {
  const { Thrift } = thriftrwLib()
  const entryPoint = path.resolve(String(file))
  const model = new Thrift({ entryPoint, allowFilesystemAccess: true, ...modelOptions(opts) })
  return build(model, entryPoint, opts)
}

/** As load, from IDL text (no includes). */
function parse (source, opts = {}) {
  const { Thrift } = thriftrwLib()
  const model = new Thrift({ source: String(source), ...modelOptions(opts) })
  return build(model, opts.filename || 'service.thrift', opts)
}

function serviceOf (service) {
  if (!service || typeof service.methods !== 'object') {
    throw new TypeError('service must be one of thrift.load(...).services')
  }
  return service
}

/** A PingPong result struct as the call's outcome: { value } or { error }. */
function outcome (m, r) {
  for (const x of m._exceptions) {
    const v = r[x.name]
    if (v != null) return { error: new ThriftException(x.type, v) }
  }
  if (r.failure != null) {
    return { error: new RpcError(status.INTERNAL, `${m.service}.${m.name}: the result carries an exception this IDL does not declare`) }
  }
  // A result with no value: void, or what Kitex's client gives as a nil response.
  return { value: m._void ? undefined : (r.success === undefined ? null : r.success) }
}

/** The result field a handler's error answers with, when it is a declared exception. */
function declared (m, err) {
  if (err == null || typeof err !== 'object') return null
  for (const x of m._exceptions) {
    if (err instanceof ThriftException && err.exception === x.type) return { [x.name]: err.value }
    if (typeof x.surface === 'function' && err instanceof x.surface) return { [x.name]: err }
  }
  return null
}

const THRIFT_OPTS = { contentSubtype: 'thrift' }
const CHANNEL = Symbol('channel')

function unaryMethod (channel, m, defaults) {
  const n = m.args.length
  return (...a) => {
    const argsObj = {}
    for (let i = 0; i < n; i++) argsObj[m.args[i].name] = a[i]
    const o = a.length > n && a[n] != null ? a[n] : {}
    const p = channel.unary(m.path, argsObj, {
      ...defaults,
      ...o,
      ...THRIFT_OPTS,
      serialize: m.encodeRequest,
      deserialize: (b) => outcome(m, m.decodeResponse(b))
    })
    const q = p.then((r) => (r.error ? Promise.reject(r.error) : r.value))
    if (p.call) {
      Object.defineProperties(q, {
        call: { value: p.call },
        headers: { get () { return p.headers } },
        trailers: { get () { return p.trailers } },
        cancel: { value () { p.cancel() } }
      })
    }
    return q
  }
}

/**
 * A client of a loaded service: a method per function, by its name and its lowerCamel
 * name. PingPong methods take the function's arguments in order, then call options, and
 * return a Promise of the value (rejecting with a ThriftException for a declared
 * exception); `(streaming.mode=...)` methods work as the protobuf ones do: server →
 * `(request, options)` → Readable, client → `(options)` → Writable with `.response`,
 * bidirectional → `(options)` → Duplex.
 */
class Client {
  constructor (channel, service, defaults = {}) {
    if (typeof channel === 'string') channel = new Channel(channel)
    serviceOf(service)
    // A function named `channel` or `close` may shadow these; close() still works.
    Object.defineProperty(this, 'channel', { value: channel, enumerable: false, writable: true })
    Object.defineProperty(this, CHANNEL, { value: channel })
    for (const m of Object.values(service.methods)) {
      const codec = { ...THRIFT_OPTS, serialize: m.encodeRequest, deserialize: m.decodeResponse }
      let fn
      switch (m.shape) {
        case SHAPE.UNARY: fn = unaryMethod(channel, m, defaults); break
        case SHAPE.SERVER_STREAMING: fn = (req, o) => channel.serverStreaming(m.path, req, { ...defaults, ...o, ...codec }); break
        case SHAPE.CLIENT_STREAMING: fn = (o) => channel.clientStreaming(m.path, { ...defaults, ...o, ...codec }); break
        default: fn = (o) => channel.bidi(m.path, { ...defaults, ...o, ...codec })
      }
      this[m.name] = fn
      const alias = lowerCamel(m.name)
      if (!(alias in this)) this[alias] = fn
    }
  }

  /** Closes the channel (see Channel.close). */
  close () { this[CHANNEL].close() }
}

function checkCodec (call) {
  if (call.codec !== 'thrift') {
    throw new RpcError(status.INVALID_ARGUMENT, `${call.method} takes Thrift messages (application/grpc+thrift, TTHeader), not ${call.codec || 'this content type'}`)
  }
}

function wrapUnary (m, h) {
  const single = m.args.length === 1 ? m.args[0].name : null
  const run = h.length >= 2
    ? (call) => new Promise((resolve, reject) => h(call, (err, v, trailers) => {
      if (trailers) call.setTrailers(trailers)
      if (err) reject(err)
      else resolve(v)
    }))
    : h
  return async (call) => {
    checkCodec(call)
    call.args = call.request
    if (single !== null) call.request = call.args[single]
    try {
      return { success: await run(call) }
    } catch (e) {
      const r = declared(m, e)
      if (r) return r
      throw e
    }
  }
}

function wrapStreaming (h) {
  return (call) => {
    checkCodec(call)
    return h(call)
  }
}

/**
 * Registers every method of a loaded service on `server`, with handlers from `impl` by
 * name or lowerCamel name; a method without one uses the pull form (its messages then are
 * the args and result structs of a PingPong method). PingPong handlers get `call.request`
 * (the one argument; `call.args` holds every argument by name) and return the value, or
 * throw a declared exception (a ThriftException or an instance of the exception type) to
 * answer with it; stream handlers are the protobuf ones. Any other error ends the call
 * with a status, as for protobuf (a BizStatusError with a biz status).
 */
function addService (server, service, impl = {}) {
  serviceOf(service)
  for (const m of Object.values(service.methods)) {
    const h = impl[m.name] || impl[lowerCamel(m.name)]
    if (h != null && typeof h !== 'function') throw new TypeError(`the handler of ${m.name} must be a function`)
    let handler = null
    if (h) handler = m.shape === SHAPE.UNARY ? wrapUnary(m, h.bind(impl)) : wrapStreaming(h.bind(impl))
    server.handle(m.path, m.shape, handler, { serialize: m.encodeResponse, deserialize: m.decodeRequest })
  }
  return server
}

module.exports = { load, parse, Client, addService, ThriftException, MODES, THRIFTRW_VERSION }
