'use strict'
// The sending half of a call: the writes made in one JS turn reach the native call in one
// crossing (`trySendBatch`) instead of one each. A write's callback runs at once while less
// than LIMIT bytes wait here and the native queue has room; otherwise it waits, so a
// Writable's write() returns false and 'drain' follows when the peer catches up.
const SENT = 0
const CLOSED = 2
const LIMIT = 64 * 1024

class Sender {
  /**
   * @param nat the native call (trySend, trySendBatch, pollSend)
   * @param onClosed the call can send no more
   */
  constructor (nat, onClosed) {
    this.nat = nat
    this.onClosed = onClosed
    this.q = []
    this.bytes = 0
    this.flushQueued = false
    /** The native call holds a refused message until there is room. */
    this.full = false
    this.held = null
    this.idle = null
    this.closed = false
  }

  write (buf, cb) {
    if (this.closed) return void setImmediate(cb)
    this.q.push(buf)
    this.bytes += buf.length
    if (!this.flushQueued && !this.full) {
      this.flushQueued = true
      queueMicrotask(() => {
        this.flushQueued = false
        this.flush()
      })
    }
    if (this.bytes < LIMIT && !this.full) cb()
    else this.held = cb
  }

  flush () {
    while (this.q.length && !this.full && !this.closed) {
      const n = this.q.length > 1 ? this.nat.trySendBatch(this.q) : 0
      if (n > 0) {
        this.drop(n)
        continue
      }
      const r = this.nat.trySend(this.q[0])
      this.drop(1)
      if (r === SENT) continue
      if (r === CLOSED) return this.fail()
      this.full = true // the native call keeps the message; a wake-up follows
    }
    this.settle()
  }

  /** After a wake-up: is there room for the kept message now? */
  wake () {
    if (!this.full || this.closed) return
    const r = this.nat.pollSend()
    if (r !== SENT && r !== CLOSED) return
    this.full = false
    if (r === CLOSED) return this.fail()
    this.flush()
  }

  drop (n) {
    for (let i = 0; i < n; i++) this.bytes -= this.q[i].length
    this.q = n === this.q.length ? [] : this.q.slice(n)
  }

  settle () {
    if (this.held !== null && this.bytes < LIMIT && !this.full) {
      const cb = this.held
      this.held = null
      cb()
    }
    if (this.idle !== null && this.q.length === 0 && !this.full) {
      const w = this.idle
      this.idle = null
      for (const f of w) f()
    }
  }

  /** Runs `f` once everything written so far is in the native call (or the call ended). */
  whenFlushed (f) {
    if (this.closed || (this.q.length === 0 && !this.full)) return f()
    if (this.idle === null) this.idle = []
    this.idle.push(f)
    if (!this.flushQueued) this.flush()
  }

  fail () {
    this.close()
    this.onClosed()
  }

  /** The call ended: drop what waits; writes complete on a later turn, so a writing loop
   * sees the end instead of spinning. */
  close () {
    if (this.closed) return
    this.closed = true
    this.q = []
    this.bytes = 0
    this.full = false
    const cb = this.held
    this.held = null
    if (cb) setImmediate(cb)
    const w = this.idle
    this.idle = null
    if (w) for (const f of w) f()
  }
}

module.exports = { Sender }
