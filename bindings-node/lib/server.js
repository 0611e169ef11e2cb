'use strict'
// The server: handlers for the four call shapes, or a pull form (the server as an async
// iterable of incoming calls), over a native server that JS polls on its own thread.
const { EventEmitter } = require('node:events')
const { Readable, Writable, Duplex } = require('node:stream')
const { native, watch, unwatch, hold, release } = require('./native')
const { status, SHAPE, RpcError, toFlat, fromFlat, statusOfError, unframe } = require('./status')
const { toBuffer, identity, schedulePull, offloadIo, idempotencyOf } = require('./client')
const { Sender } = require('./sender')

const BATCH = 4096
const noop = () => {}

/** The JS side of one incoming call. */
class ServerLink {
  constructor (nc, owner) {
    this.nc = nc
    this.owner = owner
    this.slot = nc.slot()
    this.recvWaiting = false
    this.sender = new Sender(nc, () => this.sendClosed())
    this.finishing = false
    this.done = false
    this.cancelled = false
    this.trailers = undefined
    watch(this.slot, () => this.wake())
    hold()
    // Registers for the client's cancellation (and the deadline).
    const c = nc.pollCancelled()
    if (c) queueMicrotask(() => this.onCancelled(c))
  }

  wake () {
    if (this.done) return
    const c = this.nc.pollCancelled()
    if (c) return this.onCancelled(c)
    this.sender.wake()
    if (this.recvWaiting) this.owner._pull()
  }

  /** Request messages, null when none is ready, false at the end of the requests. */
  pull () {
    if (this.done) return false
    const b = this.nc.pollRecvBatch(BATCH)
    if (b === null) {
      this.recvWaiting = true
      return null
    }
    this.recvWaiting = false
    if (b.length === 0) {
      const e = this.nc.recvError()
      if (e) {
        // The core already ended the call (a broken request) or the client went away.
        this.onCancelled(e)
      }
      return false
    }
    return unframe(b, [])
  }

  send (buf, cb) {
    this.sender.write(buf, cb)
  }

  sendClosed () {
    const c = this.nc.pollCancelled() || this.nc.sendError()
    if (c && c.code !== status.OK) this.onCancelled(c)
  }

  /** Ends the call with a status, after the messages written before. */
  finish (code, details, md, statusDetails) {
    if (this.done || this.finishing) return
    this.finishing = true
    this.sender.whenFlushed(() => this.finishNow(code, details, md, statusDetails))
  }

  /** Finished or finishing: nothing more is up to the handler. */
  get ended () { return this.done || this.finishing }

  finishNow (code, details, md, statusDetails) {
    if (this.done) return
    try {
      this.nc.finish(code, String(details || ''), statusDetails, toFlat(md === undefined ? this.trailers : md))
    } catch (e) {
      // Bad trailers: the client still hears the call ended.
      this.nc.finish(status.INTERNAL, `invalid trailers: ${e.message}`, undefined, undefined)
    }
    this.close()
  }

  onCancelled (s) {
    if (this.done) return
    this.cancelled = true
    this.owner.cancelled = true
    this.close()
    const err = new RpcError(s.code, s.details, fromFlat(s.metadata))
    this.owner.emit('cancelled', err)
    if (typeof this.owner.destroy === 'function') this.owner.destroy()
  }

  close () {
    if (this.done) return
    this.done = true
    unwatch(this.slot)
    release()
    this.nc.dispose()
    this.sender.close()
  }
}

/** What every server call has: metadata, deadline, headers, trailers, status. */
function serverApi (cls) {
  Object.defineProperties(cls.prototype, {
    sendHeaders: {
      value (md) { if (!this._link.done) this._link.nc.sendHeaders(toFlat(md || {})) }
    },
    setTrailers: { value (md) { this._link.trailers = md } },
    /** Ends the call now with `{code, details, metadata}`. */
    sendStatus: {
      value (s) {
        this._link.finish(s.code, s.details, s.metadata, s.statusDetails)
        if (typeof this.destroy === 'function' && !this.destroyed) this.destroy()
      }
    },
    getDeadline: { value () { return this.deadline } },
    getPeer: { value () { return this.peer } }
  })
}

function initCall (call, nc, o, method, shape) {
  call._link = new ServerLink(nc, call)
  call._ser = o.serialize || toBuffer
  call._des = o.deserialize || identity
  call.method = method
  call.shape = shape
  call.protocol = nc.protocol()
  call.codec = nc.codec()
  call.metadata = fromFlat(nc.metadata())
  const ms = nc.timeRemainingMs()
  call.deadline = ms == null ? Infinity : new Date(Date.now() + ms)
  call.peer = nc.peer()
  call.cancelled = false
}

function decodeOrFail (call, buf) {
  if (call._des === identity) return { v: buf }
  try {
    return { v: call._des(buf) }
  } catch (e) {
    call._link.finish(status.INTERNAL, `failed to deserialize a request: ${e.message}`)
    return null
  }
}

/** A unary or server-streaming call's single request, read before the handler runs. The
 * core fails the call (UNIMPLEMENTED) when the client sends none or several: the handler
 * then never runs. */
function readSingle (call, then) {
  let got
  call._pull = () => {
    for (;;) {
      const msgs = call._link.pull()
      if (msgs === null) return
      if (msgs === false) break
      if (got === undefined) got = msgs[0]
    }
    if (call._link.ended || got === undefined) return
    const d = decodeOrFail(call, got)
    if (d) {
      call.request = d.v
      then()
    }
  }
  call._pull()
}

/** Pushes a batch of requests; true while the stream wants more. */
function pushMessages (stream, msgs) {
  let more = true
  for (let i = 0; i < msgs.length; i++) {
    const d = decodeOrFail(stream, msgs[i])
    if (!d) {
      stream.destroy()
      return false
    }
    more = stream.push(d.v)
  }
  return more && !stream.destroyed
}

class ServerUnaryCall extends EventEmitter {
  _reply (v) {
    if (this._link.ended) return
    let buf
    try {
      buf = this._ser(v)
    } catch (e) {
      this._link.finish(status.INTERNAL, `failed to serialize the response: ${e.message}`)
      return
    }
    this._link.send(buf, noop)
    this._link.finish(status.OK, '')
  }

  _fail (e) {
    const s = statusOfError(e)
    this._link.finish(s.code, s.details, s.metadata, s.statusDetails)
  }
}
serverApi(ServerUnaryCall)

/** Client streaming: a Readable of requests. */
class ServerReadableCall extends Readable {
  constructor () {
    super({ objectMode: true })
    this.on('error', noop)
  }

  _read () { schedulePull(this) }
  _pull () {
    for (;;) {
      const msgs = this._link.pull()
      if (msgs === null) return
      if (msgs === false) {
        if (!this._link.cancelled) this.push(null)
        return
      }
      if (!pushMessages(this, msgs)) return
    }
  }

  _reply (v) { ServerUnaryCall.prototype._reply.call(this, v) }
  _fail (e) { ServerUnaryCall.prototype._fail.call(this, e) }
}
serverApi(ServerReadableCall)

/** Server streaming: a Writable of responses; `end()` finishes the call with OK. */
class ServerWritableCall extends Writable {
  constructor () {
    super({ objectMode: true })
    this.on('error', noop)
  }

  _write (chunk, _enc, cb) {
    let buf
    try {
      buf = this._ser(chunk)
    } catch (e) {
      return cb(new TypeError(`failed to serialize a response: ${e.message}`))
    }
    this._link.send(buf, cb)
  }

  _final (cb) {
    this._link.finish(status.OK, '')
    cb()
  }

  _destroy (err, cb) {
    if (!this._link.ended) {
      if (err) {
        this._fail(err)
      } else {
        // Destroyed without an error before the end: abort, as a cancel.
        this._link.nc.cancel()
        this._link.close()
      }
    }
    cb(err)
  }

  _fail (e) { ServerUnaryCall.prototype._fail.call(this, e) }
}
serverApi(ServerWritableCall)

/** Bidirectional streaming (and every call of the pull form): a Duplex. */
class ServerDuplexCall extends Duplex {
  constructor () {
    super({ objectMode: true })
    this.on('error', noop)
  }

  _read () { schedulePull(this) }
  _pull () { ServerReadableCall.prototype._pull.call(this) }
  // `for await (const req of call)` must leave the call open for writing after the loop
  // (Node's default destroys a Duplex whose writable side is still open).
  [Symbol.asyncIterator] () { return this.iterator({ destroyOnReturn: false }) }
  _write (chunk, enc, cb) { ServerWritableCall.prototype._write.call(this, chunk, enc, cb) }
  _final (cb) { ServerWritableCall.prototype._final.call(this, cb) }
  _destroy (err, cb) { ServerWritableCall.prototype._destroy.call(this, err, cb) }
  _reply (v) { ServerUnaryCall.prototype._reply.call(this, v) }
  _fail (e) { ServerUnaryCall.prototype._fail.call(this, e) }
}
serverApi(ServerDuplexCall)

/** Runs a handler that returns the single response (or takes a grpc-js style callback). */
function runReplying (call, handler) {
  let r
  try {
    if (handler.length >= 2) {
      return handler(call, (err, v, trailers) => {
        if (trailers) call.setTrailers(trailers)
        if (err) call._fail(err)
        else call._reply(v)
      })
    }
    r = handler(call)
  } catch (e) {
    return call._fail(e)
  }
  if (r && typeof r.then === 'function') r.then((v) => call._reply(v), (e) => call._fail(e))
  else call._reply(r)
}

/** Runs a handler that writes responses: an async handler's call ends when it returns. */
function runStreaming (call, handler) {
  let r
  try {
    r = handler(call)
  } catch (e) {
    return failStream(call, e)
  }
  if (r && typeof r.then === 'function') {
    r.then(() => { if (!call._link.ended && !call.writableEnded) call.end() }, (e) => failStream(call, e))
  }
}

function failStream (call, e) {
  if (call._link.ended) return
  call._fail(e)
  call.destroy()
}

/** A server of gRPC, gRPC-Web and Connect on one port. */
class Server extends EventEmitter {
  /**
   * @param opts { cert, key, ca, maxConcurrentStreams, maxReceiveMessageSize, cors, corsMaxAge }
   *   ca: mutual TLS, the CAs (PEM) a client's certificate must chain to
   *   handshakeTimeout, maxConnections, maxConnectionAge, maxConnectionAgeGrace,
   *   maxConnectionIdle, headerReadTimeout:
   *     connection limits (ms), as the core's ServerOptions
   *   permitKeepaliveTime (ms), permitKeepaliveWithoutCalls: keepalive enforcement
   *   keepaliveTime, keepaliveTimeout (ms): the server's own pings (0: off)
   *   sendBudget, connectionSendBudget (bytes): what the server holds for clients to read
   *   receiveBudget, connectionReceiveBudget (bytes): what clients may send ahead of the
   *     handlers' reading
   *   cors: the origins whose browser pages may call ('*' for any), one or an array;
   *   corsMaxAge: ms a browser may cache a preflight's answer
   */
  constructor (opts = {}) {
    super()
    this._nat = new native.NativeServer({
      certPem: opts.cert && toBuffer(opts.cert),
      keyPem: opts.key && toBuffer(opts.key),
      clientCaPem: opts.ca && toBuffer(opts.ca),
      handshakeTimeoutMs: opts.handshakeTimeout,
      maxConnections: opts.maxConnections,
      maxConnectionAgeMs: opts.maxConnectionAge,
      maxConnectionAgeGraceMs: opts.maxConnectionAgeGrace,
      maxConnectionIdleMs: opts.maxConnectionIdle,
      headerReadTimeoutMs: opts.headerReadTimeout,
      permitKeepaliveTimeMs: opts.permitKeepaliveTime,
      permitKeepaliveWithoutCalls: opts.permitKeepaliveWithoutCalls,
      keepaliveTimeMs: opts.keepaliveTime,
      keepaliveTimeoutMs: opts.keepaliveTimeout,
      sendBudget: opts.sendBudget,
      connectionSendBudget: opts.connectionSendBudget,
      receiveBudget: opts.receiveBudget,
      connectionReceiveBudget: opts.connectionReceiveBudget,
      maxConcurrentStreams: opts.maxConcurrentStreams,
      maxRecvMessageSize: opts.maxReceiveMessageSize,
      hostConnections: !offloadIo(opts),
      cors: typeof opts.cors === 'string' ? [opts.cors] : opts.cors,
      corsMaxAgeMs: opts.corsMaxAge
    })
    this._methods = new Map()
    this._queue = []
    this._waiters = []
    this._state = 'new'
    this._slot = this._nat.slot()
  }

  /**
   * Serves `path` with `shape` (0..3, see SHAPE); `handler` absent: the pull form. `codec`:
   * { serialize, deserialize, idempotency }; idempotency 'no-side-effects' lets a unary
   * method answer Connect's GET too ('unknown', the default, and 'idempotent' answer 405).
   */
  handle (path, shape, handler, codec = {}) {
    if (handler != null && typeof handler !== 'function') throw new TypeError('handler must be a function')
    this._nat.addMethod(path, shape, codec.idempotency)
    this._methods.set(path, { shape, handler, codec })
    return this
  }

  /** handler(call) → response (or a Promise of it); `call.request` is the request. */
  unary (path, handler, codec) { return this.handle(path, SHAPE.UNARY, handler, codec) }
  /** handler(call) → response; `call` is a Readable of requests. */
  clientStreaming (path, handler, codec) { return this.handle(path, SHAPE.CLIENT_STREAMING, handler, codec) }
  /** handler(call): `call` is a Writable of responses with `call.request`; `end()` finishes. */
  serverStreaming (path, handler, codec) { return this.handle(path, SHAPE.SERVER_STREAMING, handler, codec) }
  /** handler(call): `call` is a Duplex; `end()` finishes. */
  bidi (path, handler, codec) { return this.handle(path, SHAPE.BIDI, handler, codec) }

  /** Pull form: calls of `path` come out of `for await (const call of server)`. */
  addMethod (path, shape, codec) { return this.handle(path, shape, null, codec) }

  /**
   * Every method of a service definition (@grpc/proto-loader's or grpc-js's), with handlers
   * from `impl` by name or original name. A method without a handler uses the pull form. A
   * unary method whose definition says `option idempotency_level = NO_SIDE_EFFECTS;`
   * answers Connect's GET too.
   */
  addService (service, impl = {}) {
    for (const name of Object.keys(service)) {
      const m = service[name]
      const shape = m.requestStream ? (m.responseStream ? SHAPE.BIDI : SHAPE.CLIENT_STREAMING) : (m.responseStream ? SHAPE.SERVER_STREAMING : SHAPE.UNARY)
      const h = impl[name] || (m.originalName && impl[m.originalName])
      this.handle(m.path, shape, h ? h.bind(impl) : null, { serialize: m.responseSerialize, deserialize: m.requestDeserialize, idempotency: idempotencyOf(m) })
    }
    return this
  }

  /** Listens on "host:port" (port 0 picks one) and returns the bound port. */
  listen (addr = '127.0.0.1:0') {
    if (typeof addr === 'number') addr = `127.0.0.1:${addr}`
    const port = this._nat.bind(addr)
    this._state = 'listening'
    hold()
    watch(this._slot, () => this._accept())
    this._accept()
    return port
  }

  _accept () {
    for (;;) {
      const calls = this._nat.pollAccept(256)
      if (calls === null) return
      if (calls.length === 0) return this._stopped()
      for (const nc of calls) this._dispatch(nc)
    }
  }

  _dispatch (nc) {
    const method = nc.method()
    const m = this._methods.get(method)
    const shape = nc.shape()
    if (!m || !m.handler) {
      const call = new ServerDuplexCall()
      initCall(call, nc, m ? m.codec : {}, method, shape)
      if (this._waiters.length) this._waiters.shift()({ value: call, done: false })
      else this._queue.push(call)
      return
    }
    const h = m.handler
    switch (shape) {
      case SHAPE.UNARY: {
        const call = new ServerUnaryCall()
        initCall(call, nc, m.codec, method, shape)
        readSingle(call, () => runReplying(call, h))
        break
      }
      case SHAPE.CLIENT_STREAMING: {
        const call = new ServerReadableCall()
        initCall(call, nc, m.codec, method, shape)
        runReplying(call, h)
        break
      }
      case SHAPE.SERVER_STREAMING: {
        const call = new ServerWritableCall()
        initCall(call, nc, m.codec, method, shape)
        readSingle(call, () => runStreaming(call, h))
        break
      }
      default: {
        const call = new ServerDuplexCall()
        initCall(call, nc, m.codec, method, shape)
        runStreaming(call, h)
      }
    }
  }

  _stopped () {
    if (this._state === 'stopped') return
    const wasListening = this._state !== 'new'
    this._state = 'stopped'
    unwatch(this._slot)
    if (wasListening) release()
    for (const w of this._waiters) w({ value: undefined, done: true })
    this._waiters = []
    this.emit('close')
  }

  /** Graceful: no new calls, calls in flight get `graceMs`, then the rest are cancelled. */
  async shutdown (graceMs = 0) {
    if (this._state === 'new') return this._stopped()
    if (this._state === 'stopped') return
    await this._nat.shutdown(graceMs)
    this._accept()
    this._stopped()
  }

  /** Shutdown without grace. */
  close () { return this.shutdown(0) }

  [Symbol.asyncIterator] () {
    return {
      next: () => {
        if (this._queue.length) return Promise.resolve({ value: this._queue.shift(), done: false })
        if (this._state === 'stopped') return Promise.resolve({ value: undefined, done: true })
        return new Promise((resolve) => this._waiters.push(resolve))
      },
      return: () => Promise.resolve({ value: undefined, done: true })
    }
  }
}

module.exports = { Server, SHAPE, ServerUnaryCall, ServerReadableCall, ServerWritableCall, ServerDuplexCall }
