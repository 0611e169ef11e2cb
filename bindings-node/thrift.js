'use strict'
// rillrpc/thrift: Thrift services from an IDL loaded at run time (lib/thrift.js); needs the
// optional peer dependency thriftrw.
module.exports = require('./lib/thrift')
