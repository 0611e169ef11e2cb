'use strict'
// TLS both ways: the rillrpc server with a certificate, the rillrpc client trusting it
// (https:// with a CA), and a grpc-js client over TLS.
const { test } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const rill = require('..')
const { grpc, service, M, encReq, decResp } = require('./peer')

function selfSigned () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-tls-'))
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:FALSE'], { stdio: 'ignore' })
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) }
}

test('TLS: rillrpc client (https + CA) and grpc-js client against the rillrpc server', async (t) => {
  let pem
  try {
    pem = selfSigned()
  } catch (e) {
    return t.skip('openssl is not available')
  }
  const s = new rill.Server({ cert: pem.cert, key: pem.key })
  s.unary(M.PingPong, (call) => call.request)
  const port = s.listen()
  const ch = new rill.Channel(`https://localhost:${port}`, { ca: pem.cert })
  const r = await ch.unary(M.PingPong, encReq({ payload: Buffer.from('secure') }))
  assert.equal(decResp(r).payload.toString(), 'secure')
  // Without the CA the handshake fails: UNAVAILABLE.
  const bad = new rill.Channel(`https://localhost:${port}`)
  await assert.rejects(bad.unary(M.PingPong, Buffer.alloc(0)), (e) => e.code === rill.status.UNAVAILABLE)
  const Client = grpc.makeGenericClientConstructor(service, 'TestService')
  const c = new Client(`localhost:${port}`, grpc.credentials.createSsl(pem.cert))
  const g = await new Promise((resolve, reject) => c.PingPong({ payload: Buffer.from('js') }, (e, v) => e ? reject(e) : resolve(v)))
  assert.equal(g.payload.toString(), 'js')
  c.close()
  ch.close()
  bad.close()
  await s.shutdown(0)
})
