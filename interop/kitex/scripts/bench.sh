#!/usr/bin/env bash
# `make bench-kitex`: Kitex (v0.16.3) and rillrpc on the same Thrift echo work, in the same
# run, each side against the other's: Kitex's client (kitex-client --bench) drives Kitex's
# server and rillrpc's (kitex-echo-rill-server), and rillrpc's client (echo-client --codec
# thrift) drives the same two, over each transport: server streaming (16 B messages of one
# EchoServer call), bidi ping-pong (Echo round trips) and unary (PingPong calls; over
# ttheader they are TTHeader-framed PingPong requests, over grpc gRPC calls), and PingPong
# in Kitex's Protobuf over TTHeader (kitex-server --idl protobuf for Kitex's side). Prints a
# markdown table of the rates, and the ratios of rillrpc's server and rillrpc's client
# against Kitex's under the same peer; the machine is shared and noisy, nothing is asserted.
#   scripts/bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS]
set -uo pipefail
kitex=${1:?usage: bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS]}
rust=${2:?usage: bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS]}
secs=${3:-3}
what=bench-kitex
# shellcheck source=servers.sh
source "$(dirname "$0")/servers.sh"

start kitex-server "$kitex/kitex-server" --port 0
kitex_server=$addr
start rill-server "$rust/kitex-echo-rill-server" --port 0
rill_server=$addr
start kitex-server-protobuf "$kitex/kitex-server" --port 0 --idl protobuf
kitex_pb_server=$addr

# kitex_rate ADDR TRANSPORT WORKLOAD [ARGS...], rill_rate ADDR TRANSPORT WORKLOAD [ARGS...]:
# one rate (ARGS: the client's own, --codec thrift by default for ours).
kitex_rate() {
  local out
  out=$("$kitex/kitex-client" --target "$1" --transport "$2" --bench "$3" "${@:4}" \
    --duration-secs "$secs" 2>&1) || { echo "FAILED: $out" >&2; echo 0; return; }
  sed -n 's/.* value=\([0-9]*\) .*/\1/p' <<<"$out"
}
rill_rate() {
  local out codec=(--codec thrift)
  [ $# -gt 3 ] && codec=("${@:4}")
  out=$("$rust/echo-client" --impl rill --addr "$1" --protocol "$2" --workload "$3" \
    "${codec[@]}" --size 16 --duration-secs "$secs" 2>&1) || { echo "FAILED: $out" >&2; echo 0; return; }
  sed -n 's/.* value=\([0-9]*\) .*/\1/p' <<<"$out" | head -1
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "| workload, 16 B | transport | Kitex → Kitex | Kitex → rill | rill → Kitex | rill → rill | rill server / Kitex server (Kitex's client) | rill client / Kitex client (Kitex's server) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for w in server-stream pingpong unary; do
  for t in grpc ttheader; do
    kk=$(kitex_rate "$kitex_server" "$t" "$w")
    kr=$(kitex_rate "$rill_server" "$t" "$w")
    rk=$(rill_rate "$kitex_server" "$t" "$w")
    rr=$(rill_rate "$rill_server" "$t" "$w")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$w" "$t" "$kk" "$kr" "$rk" "$rr" \
      "$(ratio "$kr" "$kk")" "$(ratio "$rk" "$kk")"
  done
done
# PingPong in Kitex's Protobuf (echo.proto's service): Kitex's client of kitex_gen/protobuf,
# ours with the proto codec; Kitex's server is kitex-server --idl protobuf.
kk=$(kitex_rate "$kitex_pb_server" pingpong unary --api protobuf)
kr=$(kitex_rate "$rill_server" pingpong unary --api protobuf)
rk=$(rill_rate "$kitex_pb_server" ttheader unary --codec proto)
rr=$(rill_rate "$rill_server" ttheader unary --codec proto)
printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' unary "ttheader, protobuf" "$kk" "$kr" "$rk" "$rr" \
  "$(ratio "$kr" "$kk")" "$(ratio "$rk" "$kk")"
