'use strict'
// Just enough protobuf for echo.proto, by hand, so that every Node implementation in the
// bench does the same (minimal) work per message: Request{payload=1, count=2},
// Response{payload=1}.

function varint (n) {
  const out = []
  let v = BigInt.asUintN(64, BigInt(n))
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v) b |= 0x80
    out.push(b)
  } while (v)
  return out
}

function encodeRequest (payload, count = 0) {
  const parts = [0x0a, ...varint(payload.length)]
  const tail = count ? [0x10, ...varint(count)] : []
  return Buffer.concat([Buffer.from(parts), payload, Buffer.from(tail)])
}

function encodeResponse (payload) {
  return Buffer.concat([Buffer.from([0x0a, ...varint(payload.length)]), payload])
}

function decodeRequest (buf) {
  let payload = Buffer.alloc(0)
  let count = 0
  let i = 0
  const read = () => {
    let v = 0n
    let shift = 0n
    for (;;) {
      const b = buf[i++]
      v |= BigInt(b & 0x7f) << shift
      if (!(b & 0x80)) return v
      shift += 7n
    }
  }
  while (i < buf.length) {
    const tag = Number(read())
    if (tag === 0x0a) {
      const n = Number(read())
      payload = buf.subarray(i, i + n)
      i += n
    } else if (tag === 0x10) {
      count = Number(BigInt.asIntN(32, read()))
    } else {
      throw new Error(`unexpected tag ${tag}`)
    }
  }
  return { payload, count }
}

module.exports = { encodeRequest, encodeResponse, decodeRequest }
