'use strict'
// Status codes, the error type of failed calls, and metadata conversion.

/** gRPC status codes, as numbers (the values grpc-js users know). */
const status = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16
})
const names = Object.keys(status)

/** A call that ended with a status other than OK. */
class RpcError extends Error {
  constructor (code, details = '', metadata = {}, statusDetails = undefined) {
    super(`${code} ${names[code] || 'UNKNOWN'}: ${details}`)
    this.name = 'RpcError'
    this.code = code
    this.details = details
    this.metadata = metadata
    if (statusDetails !== undefined) this.statusDetails = statusDetails
  }

  /** Status object form, as the 'status' event gives it. */
  get status () {
    return { code: this.code, details: this.details, metadata: this.metadata }
  }
}

/**
 * A Kitex business status: an error that is part of a service's API (Kitex's
 * `kerrors.BizStatusError`), with a code, a message and an extra map of its own. A call that
 * ends with one rejects (or emits 'error') with it, on every protocol; a handler throws it
 * to end its call with one. Its `code` is INTERNAL (a peer's: never OK, and another code
 * where a Kitex error carries one of its own) and its `metadata` holds the biz status as
 * Kitex sends it over gRPC.
 */
class BizStatusError extends RpcError {
  constructor (bizCode, bizMessage = '', bizExtra = {}) {
    const peer = received
    received = null
    const extra = Object.entries(bizExtra || {}).map(([k, v]) => [String(k), String(v)])
    // The core writes the status (its code and trailers): every binding sends the same
    // bytes. A peer's status is kept as it came.
    const s = peer ? peer.status : require('./native').native.bizStatus(bizCode | 0, String(bizMessage), extra.flat())
    super(s.code, s.details, peer ? peer.metadata : fromFlat(s.metadata), s.statusDetails)
    this.name = 'BizStatusError'
    this.bizCode = bizCode | 0
    this.bizMessage = String(bizMessage)
    this.bizExtra = Object.fromEntries(extra)
  }

  /** The error a peer's status stands for: a BizStatusError when the core read a biz status in it. */
  static of (s, metadata) {
    if (!s.biz) return new RpcError(s.code, s.details, metadata, s.statusDetails)
    const extra = {}
    for (let i = 0; i + 1 < s.biz.extra.length; i += 2) extra[s.biz.extra[i]] = s.biz.extra[i + 1]
    received = { status: s, metadata }
    return new BizStatusError(s.biz.code, s.biz.message, extra)
  }
}
// The peer's status `BizStatusError.of` hands its constructor (set and taken synchronously).
let received = null

/**
 * Metadata in: a plain object (`{key: value | value[]}`), a Map, an array of [key, value]
 * pairs, or a grpc-js Metadata (anything with `toJSON()` giving arrays). Values are strings,
 * or Buffers for `-bin` keys. Out: the flat [k, v, k, v...] array the addon takes.
 */
function toFlat (md) {
  if (md == null) return undefined
  const flat = []
  const add = (k, v) => {
    if (Array.isArray(v)) {
      for (const x of v) add(k, x)
      return
    }
    if (typeof v === 'number' || typeof v === 'boolean') v = String(v)
    if (typeof v !== 'string' && !Buffer.isBuffer(v)) {
      if (v instanceof Uint8Array) v = Buffer.from(v.buffer, v.byteOffset, v.byteLength)
      else throw new TypeError(`metadata value for ${k} must be a string or a Buffer`)
    }
    flat.push(k, v)
  }
  if (md instanceof Map || Array.isArray(md)) {
    for (const [k, v] of md) add(String(k), v)
  } else if (typeof md.getMap === 'function' && typeof md.toJSON === 'function') {
    const j = md.toJSON()
    for (const k of Object.keys(j)) add(k, j[k])
  } else if (typeof md === 'object') {
    for (const k of Object.keys(md)) add(k, md[k])
  } else {
    throw new TypeError('metadata must be an object, a Map or an array of pairs')
  }
  return flat
}

/** The addon's flat array to a plain object; a repeated key gives an array. */
function fromFlat (flat) {
  const md = {}
  if (!flat) return md
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const k = flat[i]
    const v = flat[i + 1]
    if (k in md) {
      const prev = md[k]
      md[k] = Array.isArray(prev) ? prev.concat([v]) : [prev, v]
    } else {
      md[k] = v
    }
  }
  return md
}

function errorFromStatus (s) {
  return BizStatusError.of(s, fromFlat(s.metadata))
}

/** What a handler's exception ends its call with. */
function statusOfError (err) {
  if (err instanceof RpcError || (err && Number.isInteger(err.code) && err.code > 0 && err.code <= 16)) {
    return {
      code: err.code,
      details: err.details !== undefined ? String(err.details) : String(err.message || ''),
      metadata: err.metadata,
      statusDetails: err.statusDetails
    }
  }
  return { code: status.UNKNOWN, details: String((err && err.message) || err), metadata: undefined }
}

/** Splits one framed batch ([u32 LE length][bytes]...) into messages. */
function unframe (buf, out) {
  let off = 0
  const end = buf.length
  while (off < end) {
    const n = buf.readUInt32LE(off)
    off += 4
    out.push(buf.subarray(off, off + n))
    off += n
  }
  return out
}

/** The call shapes, numbered as the core numbers them. */
const SHAPE = Object.freeze({ UNARY: 0, CLIENT_STREAMING: 1, SERVER_STREAMING: 2, BIDI: 3 })

module.exports = { status, SHAPE, RpcError, BizStatusError, toFlat, fromFlat, errorFromStatus, statusOfError, unframe }
