'use strict'
// Loads the native addon and runs the reactor: the one callback through which wake-ups
// from the core's threads reach JS. Each native object has a slot id; `watch(slot, fn)`
// makes `fn` run (on the JS thread) after the object may have progressed.
const path = require('node:path')
const fs = require('node:fs')
const { platform } = require('./platform')

// The addon built from source (native/, by scripts/build.js) wins; else the prebuilt package
// of this platform (rillrpc-<platform>, an optional dependency).
function load () {
  const dir = path.join(__dirname, '..', 'native')
  const file = path.join(dir, `rillrpc.${platform()}.node`)
  if (fs.existsSync(file)) return require(file)
  const pkg = `rillrpc-${platform()}`
  try {
    return require(pkg)
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND' || !String(e.message).includes(pkg)) throw e
  }
  throw new Error(`rillrpc: no native addon for ${platform()}: neither ${file} nor the package ${pkg}; run "npm run build" in the rillrpc package (needs cargo)`)
}

const native = load()
const watchers = new Map()

// The core's runtime threads (default: one per core, at most 4); RILLRPC_WORKER_THREADS
// overrides it for the process.
if (process.env.RILLRPC_WORKER_THREADS) native.configureWorkerThreads(Number(process.env.RILLRPC_WORKER_THREADS))

native.initReactor(() => {
  const ids = native.takeReady()
  for (let i = 0; i < ids.length; i++) {
    const fn = watchers.get(ids[i])
    if (fn === undefined) continue
    try {
      fn()
    } catch (e) {
      // An exception from user code (a 'data' listener, say) surfaces as it would have
      // from a socket's callback: uncaught, on its own tick.
      process.nextTick(() => { throw e })
    }
  }
})

function watch (slot, fn) {
  watchers.set(slot, fn)
}

function unwatch (slot) {
  watchers.delete(slot)
}

module.exports = { native, watch, unwatch, hold: native.hold, release: native.release }
