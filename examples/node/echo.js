'use strict'
// echo.proto's service, loaded at run time by @grpc/proto-loader (no code generation):
// from this directory, or from examples/ in the rillrpc repository.
const fs = require('node:fs')
const path = require('node:path')
const protoLoader = require('@grpc/proto-loader')

const file = ['echo.proto', '../echo.proto'].map((p) => path.join(__dirname, p)).find((p) => fs.existsSync(p))
if (!file) throw new Error(`echo.proto is not beside ${__filename}`)
const definition = protoLoader.loadSync(file, { keepCase: true, defaults: true })

module.exports = { service: definition['echo.TestService'] }
