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

// A CA and a client certificate it signed, for mutual TLS.
function clientPki (dir) {
  const f = (n) => path.join(dir, n)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1',
    '-subj', '/CN=rill test clients', '-addext', 'basicConstraints=critical,CA:TRUE'], { stdio: 'ignore' })
  execFileSync('openssl', ['req', ...ec, '-keyout', f('client.key'), '-out', f('client.csr'),
    '-subj', '/CN=client'], { stdio: 'ignore' })
  fs.writeFileSync(f('ext'), 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n')
  execFileSync('openssl', ['x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'),
    '-CAcreateserial', '-out', f('client.pem'), '-days', '1', '-extfile', f('ext')], { stdio: 'ignore' })
  return { ca: fs.readFileSync(f('ca.pem')), cert: fs.readFileSync(f('client.pem')), key: fs.readFileSync(f('client.key')) }
}

test('mutual TLS: the server takes clients whose certificate its CA signed, and no others', async (t) => {
  let pem, pki
  try {
    pem = selfSigned()
    pki = clientPki(fs.mkdtempSync(path.join(os.tmpdir(), 'rill-mtls-')))
  } catch (e) {
    return t.skip('openssl is not available')
  }
  const s = new rill.Server({ cert: pem.cert, key: pem.key, ca: pki.ca })
  s.unary(M.PingPong, (call) => call.request)
  const port = s.listen()
  const Client = grpc.makeGenericClientConstructor(service, 'TestService')
  const call = (c, payload) => new Promise((resolve, reject) =>
    c.PingPong({ payload: Buffer.from(payload) }, { deadline: Date.now() + 10000 }, (e, v) => e ? reject(e) : resolve(v)))
  // grpc-js presenting its certificate, and ours.
  const c = new Client(`localhost:${port}`, grpc.credentials.createSsl(pem.cert, pki.key, pki.cert))
  assert.equal((await call(c, 'js')).payload.toString(), 'js')
  c.close()
  const ch = new rill.Channel(`https://localhost:${port}`, { ca: pem.cert, cert: pki.cert, key: pki.key })
  assert.equal(decResp(await ch.unary(M.PingPong, encReq({ payload: Buffer.from('rill') }))).payload.toString(), 'rill')
  ch.close()
  // No certificate, and a certificate signed by no CA the server trusts (its own key).
  for (const creds of [grpc.credentials.createSsl(pem.cert), grpc.credentials.createSsl(pem.cert, pem.key, pem.cert)]) {
    const bad = new Client(`localhost:${port}`, creds)
    await assert.rejects(call(bad, 'x'), (e) => e.code === grpc.status.UNAVAILABLE)
    bad.close()
  }
  await s.shutdown(0)
  assert.throws(() => new rill.Server({ ca: pki.ca }), /needs cert and key/)
  // Half an identity is refused, in the options' own names; a key alone is not ignored.
  for (const half of [{ cert: pem.cert }, { key: pem.key }]) {
    assert.throws(() => new rill.Server(half), { message: 'cert and key go together' })
    assert.throws(() => new rill.Channel('https://localhost:1', half), { message: 'cert and key go together' })
  }
})
