'use strict'
// rillrpc for Node: gRPC over HTTP/2 on the rillrpc Rust engine.
const { native } = require('./lib/native')
const { status, RpcError, BizStatusError } = require('./lib/status')
const { Channel, makeClient } = require('./lib/client')
const { Server, SHAPE } = require('./lib/server')

module.exports = {
  Channel,
  Server,
  RpcError,
  BizStatusError,
  status,
  SHAPE,
  makeClient,
  // Thrift (Kitex) from IDL at run time; thriftrw is loaded on first use.
  thrift: require('./lib/thrift'),
  version: native.version()
}
