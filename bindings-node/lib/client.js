'use strict'
// The client: a channel, and the four call shapes as a Promise, a Readable, a Writable
// (plus a Promise) and a Duplex, over a native call that JS polls on its own thread.
const { EventEmitter } = require('node:events')
const { Readable, Writable, Duplex } = require('node:stream')
const { native, watch, unwatch, hold, release } = require('./native')
const { status, SHAPE, RpcError, BizStatusError, toFlat, fromFlat, unframe } = require('./status')
const { Sender } = require('./sender')

/** Most messages handed over per wake-up. */
const BATCH = 4096

const identity = (x) => x
/**
 * By default a connection is read and parsed on the JS thread, as grpc-js does: a request or
 * an answer then costs no thread hop (ping-pong and unary latency). `offloadIo: true` (or
 * RILLRPC_NODE_OFFLOAD_IO=1 for the process) leaves that to the core's threads instead, which
 * streams more messages per second when the JS thread is the bottleneck. A channel's TLS
 * connections are always read on the core's threads.
 */
function offloadIo (opts) {
  if (opts.offloadIo !== undefined) return Boolean(opts.offloadIo)
  return process.env.RILLRPC_NODE_OFFLOAD_IO === '1'
}

function toBuffer (x) {
  if (Buffer.isBuffer(x)) return x
  if (x instanceof Uint8Array) return Buffer.from(x.buffer, x.byteOffset, x.byteLength)
  if (typeof x === 'string') return Buffer.from(x)
  throw new TypeError('a message must be a Buffer, a Uint8Array or a string (or pass serialize)')
}

function nativeOptions (o) {
  let timeoutMs
  if (o.timeout != null) timeoutMs = Number(o.timeout)
  if (o.deadline != null) {
    const d = o.deadline instanceof Date ? o.deadline.getTime() : Number(o.deadline)
    if (Number.isFinite(d)) {
      const t = Math.max(0, d - Date.now())
      timeoutMs = timeoutMs == null ? t : Math.min(timeoutMs, t)
    }
  }
  if (timeoutMs != null && !(timeoutMs >= 0)) throw new TypeError(`invalid timeout ${o.timeout}`)
  return {
    timeoutMs: timeoutMs == null || !Number.isFinite(timeoutMs) ? undefined : timeoutMs,
    metadata: toFlat(o.metadata),
    compression: o.compression,
    maxRecvMessageSize: o.maxReceiveMessageSize,
    contentSubtype: o.contentSubtype,
    waitForReady: o.waitForReady,
    idempotency: o.idempotency
  }
}

/** protobuf's `MethodOptions.IdempotencyLevel`, by its name or number, under the core's names. */
const IDEMPOTENCY_LEVELS = new Map([
  ['NO_SIDE_EFFECTS', 'no-side-effects'], [1, 'no-side-effects'],
  ['IDEMPOTENT', 'idempotent'], [2, 'idempotent']
])

/**
 * A method definition's `option idempotency_level` by the core's name ('no-side-effects'
 * for NO_SIDE_EFFECTS), or undefined when it names none. @grpc/proto-loader puts protobuf's
 * enum name in `options.idempotency_level`; a definition built from a descriptor set may
 * hold its number.
 */
function idempotencyOf (m) {
  const level = m.options && m.options.idempotency_level
  return level == null ? undefined : IDEMPOTENCY_LEVELS.get(level)
}

/**
 * The JS side of one native call: polls it, parks until a wake-up, delivers headers and
 * the final status to its owner (the object the user holds).
 */
class Link {
  constructor (nat, owner, signal) {
    this.nat = nat
    this.owner = owner
    this.slot = nat.slot()
    this.recvWaiting = false
    this.headersWaiting = false
    this.sender = new Sender(nat, () => {})
    this.headers = null
    this.headerWaiters = null
    this.trailerWaiters = null
    this.status = null
    this.done = false
    this.signal = null
    this.onAbort = null
    watch(this.slot, () => this.wake())
    hold()
    if (signal) {
      if (signal.aborted) {
        queueMicrotask(() => this.cancel('the call was aborted'))
      } else {
        this.signal = signal
        this.onAbort = () => this.cancel('the call was aborted')
        signal.addEventListener('abort', this.onAbort, { once: true })
      }
    }
  }

  wake () {
    if (this.done) return
    this.sender.wake()
    if (this.headersWaiting) this.pollHeaders()
    if (this.recvWaiting) this.owner._pull()
  }

  /** Ready messages (raw Buffers), null when none is (a wake-up follows), false at the end. */
  pull () {
    if (this.done) return false
    const b = this.nat.pollRecvBatch(BATCH)
    if (b === null) {
      this.recvWaiting = true
      return null
    }
    this.recvWaiting = false
    if (this.headers === null) this.pollHeaders()
    if (b.length === 0) {
      this.finish()
      return false
    }
    return unframe(b, [])
  }

  pollHeaders () {
    const h = this.nat.pollHeaders()
    if (h === null) {
      this.headersWaiting = true
      return
    }
    this.headersWaiting = false
    this.gotHeaders(fromFlat(h))
  }

  gotHeaders (md) {
    if (this.headers !== null) return
    this.headers = md
    if (this.headerWaiters) for (const r of this.headerWaiters) r(md)
    this.headerWaiters = null
    this.owner.emit('metadata', md)
  }

  headersPromise () {
    if (this.headers !== null) return Promise.resolve(this.headers)
    return new Promise((resolve) => {
      if (this.headerWaiters === null) this.headerWaiters = []
      this.headerWaiters.push(resolve)
      if (!this.headersWaiting && !this.done) this.pollHeaders()
    })
  }

  trailersPromise () {
    if (this.status !== null) return Promise.resolve(this.status.metadata)
    return new Promise((resolve) => {
      if (this.trailerWaiters === null) this.trailerWaiters = []
      this.trailerWaiters.push(resolve)
    })
  }

  send (buf, cb) {
    this.sender.write(buf, cb)
  }

  closeSend () {
    this.sender.whenFlushed(() => { if (!this.done) this.nat.closeSend() })
  }

  cancel (why) {
    if (this.done) return
    this.nat.cancel()
    this.finish(why)
  }

  /** The call ended: collect its status and tell the owner. */
  finish (cancelReason) {
    if (this.done) return
    this.done = true
    const s = this.nat.status() || { code: status.CANCELLED, details: cancelReason || 'call cancelled', metadata: [] }
    if (cancelReason && s.code === status.CANCELLED) s.details = cancelReason
    this.status = { code: s.code, details: s.details, metadata: fromFlat(s.metadata) }
    if (s.statusDetails) this.status.statusDetails = s.statusDetails
    this.biz = s.biz
    unwatch(this.slot)
    release()
    this.nat.dispose()
    if (this.signal) this.signal.removeEventListener('abort', this.onAbort)
    if (this.headers === null) this.gotHeaders({})
    if (this.trailerWaiters) for (const r of this.trailerWaiters) r(this.status.metadata)
    this.trailerWaiters = null
    this.sender.close()
    this.owner.emit('status', this.status)
    this.owner._ended(this.status, cancelReason !== undefined)
  }

  error () {
    const s = this.status
    return BizStatusError.of({ code: s.code, details: s.details, statusDetails: s.statusDetails, biz: this.biz }, s.metadata)
  }
}

/** The members every call object has. */
function callApi (cls) {
  Object.defineProperties(cls.prototype, {
    headers: { get () { return this._link.headersPromise() } },
    trailers: { get () { return this._link.trailersPromise() } },
    cancel: { value () { this._link.cancel('call cancelled by the client') } },
    getStatus: { value () { return this._link.status } }
  })
}

/** Server streaming, as a Readable of responses (also an async iterable). */
class ResponseStream extends Readable {
  constructor (nat, o) {
    super({ objectMode: true, highWaterMark: o.highWaterMark || 16 })
    this._des = o.deserialize || identity
    this._link = new Link(nat, this, o.signal)
  }

  // Pull on a later microtask, not inside _read: pushes made outside _read go straight to
  // 'data' listeners instead of through the Readable's buffer, much cheaper per message.
  _read () { schedulePull(this) }

  _pull () {
    for (;;) {
      const msgs = this._link.pull()
      if (!msgs) return
      if (!deliver(this, msgs)) return
    }
  }

  _ended (s, cancelledHere) {
    if (s.code === status.OK) return this.push(null)
    const err = this._link.error()
    if (this.readableLength === 0 || cancelledHere) return this.destroy(err)
    // Responses that came before the peer's status are still the caller's; a destroy
    // would drop them (an async iterator reads nothing from a destroyed stream). As
    // grpc-js does, end the stream after them and report the error beside it, on a later
    // tick as a destroy would.
    this.push(null)
    process.nextTick(() => this.emit('error', err))
  }

  _destroy (err, cb) {
    this._link.cancel('call cancelled: the stream was destroyed')
    cb(err)
  }
}
callApi(ResponseStream)

function schedulePull (stream) {
  if (stream._pullQueued) return
  stream._pullQueued = true
  queueMicrotask(() => {
    stream._pullQueued = false
    stream._pull()
  })
}

/** Pushes a batch; true while the stream wants more. */
function deliver (stream, msgs) {
  const des = stream._des
  let more = true
  for (let i = 0; i < msgs.length; i++) {
    let v
    if (des === identity) v = msgs[i]
    else {
      try {
        v = des(msgs[i])
      } catch (e) {
        stream._link.cancel('failed to deserialize a response')
        stream.destroy(new RpcError(status.INTERNAL, `failed to deserialize a response: ${e.message}`))
        return false
      }
    }
    more = stream.push(v)
  }
  return more && !stream.destroyed
}

/** Client streaming: a Writable of requests; `response` is a Promise of the reply. */
class RequestStream extends Writable {
  constructor (nat, o) {
    super({ objectMode: true, highWaterMark: o.highWaterMark || 16 })
    this._ser = o.serialize || toBuffer
    this._des = o.deserialize || identity
    this._reply = undefined
    this._count = 0
    this.response = new Promise((resolve, reject) => {
      this._resolve = resolve
      this._reject = reject
    })
    this._link = new Link(nat, this, o.signal)
    this._pull()
  }

  _write (chunk, _enc, cb) {
    let buf
    try {
      buf = this._ser(chunk)
    } catch (e) {
      return cb(new TypeError(`failed to serialize a request: ${e.message}`))
    }
    this._link.send(buf, cb)
  }

  _final (cb) {
    this._link.closeSend()
    cb()
  }

  _destroy (err, cb) {
    if (err) this._link.cancel('call cancelled: the request stream failed')
    cb(err)
  }

  _pull () {
    for (;;) {
      const msgs = this._link.pull()
      if (!msgs) return
      if (this._count === 0) this._reply = msgs[0]
      this._count += msgs.length
    }
  }

  _ended (s) {
    settleSingle(this, s)
  }
}
callApi(RequestStream)

// The core ends a single-response call OK only after exactly one response (UNIMPLEMENTED
// otherwise), so an OK status comes with the reply in hand.
function settleSingle (call, s) {
  if (s.code !== status.OK) return call._reject(call._link.error())
  let v
  try {
    v = call._des(call._reply)
  } catch (e) {
    return call._reject(new RpcError(status.INTERNAL, `failed to deserialize the response: ${e.message}`))
  }
  call._resolve(v)
}

/** Bidirectional streaming: a Duplex, requests in, responses out. */
class BidiStream extends Duplex {
  constructor (nat, o) {
    super({ objectMode: true, readableHighWaterMark: o.highWaterMark || 16, writableHighWaterMark: o.highWaterMark || 16 })
    this._ser = o.serialize || toBuffer
    this._des = o.deserialize || identity
    this._link = new Link(nat, this, o.signal)
  }

  // Reading every response must not destroy the call while requests may still be written
  // (Node's default for a Duplex); `cancel()` ends it early.
  [Symbol.asyncIterator] () { return this.iterator({ destroyOnReturn: false }) }
  _write (chunk, enc, cb) { RequestStream.prototype._write.call(this, chunk, enc, cb) }
  _final (cb) { RequestStream.prototype._final.call(this, cb) }
  _read () { schedulePull(this) }
  _pull () { ResponseStream.prototype._pull.call(this) }
  _ended (s, cancelledHere) { ResponseStream.prototype._ended.call(this, s, cancelledHere) }
  _destroy (err, cb) { ResponseStream.prototype._destroy.call(this, err, cb) }
}
callApi(BidiStream)

/** A unary call: the Promise of the response, with headers, trailers and cancel on it. */
class UnaryCall extends EventEmitter {
  constructor (nat, o, resolve, reject) {
    super()
    this._des = o.deserialize || identity
    this._resolve = resolve
    this._reject = reject
    this._reply = undefined
    this._count = 0
    this._link = new Link(nat, this, o.signal)
    this._pull()
  }

  _pull () { RequestStream.prototype._pull.call(this) }
  _ended (s) { settleSingle(this, s) }
}
callApi(UnaryCall)

/** A client channel to one server. Idle, it does not keep the process alive. */
class Channel {
  /**
   * @param target "http://host:port", "https://host:port" or "host:port" (h2c)
   * @param opts { ca, serverName, cert, key, connectTimeout, keepalive, userAgent, protocol,
   *   httpVersion, httpGet, authority, connectionReceiveBudget }
   *   protocol: what every call speaks, 'grpc' (the default), 'grpc-web' or 'connect'
   *   httpVersion: what the calls travel over, 'http2' (the default), 'http1' or 'auto'
   *     (a TLS server's choice by ALPN)
   *   httpGet: Connect's GET for unary calls with `idempotency: 'no-side-effects'` (those
   *     of a makeClient method whose definition says NO_SIDE_EFFECTS); off by default
   *   authority: the :authority (HTTP/2) and Host (HTTP/1.1) of every call in place of the
   *     target's host:port, as grpc-js's 'grpc.default_authority' (Kitex's gRPC clients
   *     send the destination service's name there); the TLS server name is not changed
   *   connectionReceiveBudget (bytes): what a server can make the channel hold of answers
   *     not read yet. A connection's window grows with the streams open on it, so that
   *     streams nobody reads yet do not stall its other calls, up to this (64 MiB by
   *     default); past it, unread streams stall their connection until read. 0: as far as
   *     HTTP/2 allows
   */
  constructor (target, opts = {}) {
    if (typeof target !== 'string') throw new TypeError('target must be a string like "http://127.0.0.1:50051"')
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) target = 'http://' + target
    this._nat = new native.NativeChannel(target, {
      caPem: opts.ca && toBuffer(opts.ca),
      serverName: opts.serverName,
      certPem: opts.cert && toBuffer(opts.cert),
      keyPem: opts.key && toBuffer(opts.key),
      connectTimeoutMs: opts.connectTimeout,
      keepaliveMs: opts.keepalive,
      userAgent: opts.userAgent,
      hostConnections: !offloadIo(opts),
      protocol: opts.protocol,
      httpVersion: opts.httpVersion,
      httpGet: opts.httpGet == null ? undefined : Boolean(opts.httpGet),
      authority: opts.authority == null ? undefined : String(opts.authority),
      connectionReceiveBudget: opts.connectionReceiveBudget
    })
    this._defaults = opts.callDefaults || {}
  }

  /** The protocol every call speaks: 'grpc', 'grpc-web' or 'connect'. */
  get protocol () { return this._nat.protocol() }

  /** The HTTP version the calls travel over: 'http2' or 'http1'. */
  get httpVersion () { return this._nat.httpVersion() }

  /** Whether Connect's GET is on. */
  get httpGet () { return this._nat.httpGet() }

  _open (method, shape, o, first) {
    return this._nat.open(method, shape, nativeOptions(o), first, first !== undefined)
  }

  /** One request, one response: a Promise (with `headers`, `trailers`, `cancel()`). */
  unary (method, request, opts = {}) {
    const o = { ...this._defaults, ...opts }
    let call
    const p = new Promise((resolve, reject) => {
      const buf = (o.serialize || toBuffer)(request)
      call = new UnaryCall(this._open(method, SHAPE.UNARY, o, buf), o, resolve, reject)
    })
    if (call) {
      Object.defineProperties(p, {
        call: { value: call },
        headers: { get () { return call.headers } },
        trailers: { get () { return call.trailers } },
        cancel: { value () { call.cancel() } }
      })
    }
    return p
  }

  /** One request, a Readable of responses. */
  serverStreaming (method, request, opts = {}) {
    const o = { ...this._defaults, ...opts }
    const buf = (o.serialize || toBuffer)(request)
    return new ResponseStream(this._open(method, SHAPE.SERVER_STREAMING, o, buf), o)
  }

  /** A Writable of requests whose `response` is a Promise of the one reply. */
  clientStreaming (method, opts = {}) {
    const o = { ...this._defaults, ...opts }
    return new RequestStream(this._open(method, SHAPE.CLIENT_STREAMING, o, undefined), o)
  }

  /** A Duplex: write requests, read responses. */
  bidi (method, opts = {}) {
    const o = { ...this._defaults, ...opts }
    return new BidiStream(this._open(method, SHAPE.BIDI, o, undefined), o)
  }

  /** Later calls fail with UNAVAILABLE; calls in flight finish; nothing keeps the process alive. */
  close () {
    this._nat.close()
  }
}

/**
 * A client with one method per RPC of a service definition: @grpc/proto-loader's
 * (`packageDefinition['pkg.Service']`) or grpc-js's. Methods go by their name and by
 * their original (lowerCamel) name: `client.EchoServer(req)`, `client.echoServer(req)`.
 * A method whose definition says `option idempotency_level = NO_SIDE_EFFECTS;` is called
 * with `idempotency: 'no-side-effects'` (a call's own options may say otherwise): on a
 * channel with `httpGet`, a Connect GET. Calls say their messages are protobuf
 * (`contentSubtype: 'proto'`), so each protocol labels them so: `application/grpc+proto`
 * on gRPC, Kitex's Protobuf on a `ttheader` channel (which carries Thrift unless told).
 */
function makeClient (channel, service, defaults = {}) {
  if (typeof channel === 'string') channel = new Channel(channel)
  const client = { channel }
  for (const name of Object.keys(service)) {
    const m = service[name]
    const codec = {
      serialize: m.requestSerialize,
      deserialize: m.responseDeserialize,
      contentSubtype: 'proto'
    }
    const idempotency = idempotencyOf(m)
    if (idempotency !== undefined) codec.idempotency = idempotency
    let fn
    if (!m.requestStream && !m.responseStream) fn = (req, o) => channel.unary(m.path, req, { ...defaults, ...codec, ...o })
    else if (!m.requestStream) fn = (req, o) => channel.serverStreaming(m.path, req, { ...defaults, ...codec, ...o })
    else if (!m.responseStream) fn = (o) => channel.clientStreaming(m.path, { ...defaults, ...codec, ...o })
    else fn = (o) => channel.bidi(m.path, { ...defaults, ...codec, ...o })
    client[name] = fn
    if (m.originalName && !(m.originalName in client)) client[m.originalName] = fn
  }
  return client
}

module.exports = { Channel, makeClient, toBuffer, identity, nativeOptions, schedulePull, offloadIo, idempotencyOf }
