'use strict'
// The napi-rs name of this machine's platform (linux-x64-gnu, darwin-arm64, win32-x64-msvc,
// ...): it names the addon file (rillrpc.<platform>.node) and the prebuilt package
// (rillrpc-<platform>), so an addon built here and one from a package are told apart.

function libc () {
  if (process.platform !== 'linux') return ''
  // glibc's version is in the process report; musl has none.
  const header = process.report && process.report.getReport().header
  return header && header.glibcVersionRuntime ? '-gnu' : '-musl'
}

function platform () {
  const abi = process.platform === 'win32' ? '-msvc' : libc()
  return `${process.platform}-${process.arch}${abi}`
}

module.exports = { platform }
