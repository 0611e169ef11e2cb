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
# Each cell is the best of ROUNDS runs (a loaded machine only ever slows a run down), the
# four cells of a row taking turns within each round, as bench/'s tables do.
#   scripts/bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS [ROUNDS]]
set -uo pipefail
usage="usage: bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS [ROUNDS]]"
kitex=${1:?$usage}
rust=${2:?$usage}
secs=${3:-3}
rounds=${4:-3}
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
max() { if [ "${1:-0}" -ge "${2:-0}" ]; then echo "${1:-0}"; else echo "${2:-0}"; fi; }

# row LABEL TRANSPORT KK KR RK RR: each of the four cells is a command (a kitex_rate or
# rill_rate call, quoted), run ROUNDS times in turn; prints the row with the best rates.
row() {
  local label=$1 transport=$2 best=(0 0 0 0) r i
  shift 2
  for ((r = 0; r < rounds; r++)); do
    for i in 0 1 2 3; do
      best[i]=$(max "${best[i]}" "$(eval "${@:i+1:1}")")
    done
  done
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$transport" "${best[@]}" \
    "$(ratio "${best[1]}" "${best[0]}")" "$(ratio "${best[2]}" "${best[0]}")"
}

echo "| workload, 16 B | transport | Kitex → Kitex | Kitex → rill | rill → Kitex | rill → rill | rill server / Kitex server (Kitex's client) | rill client / Kitex client (Kitex's server) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for w in server-stream pingpong unary; do
  for t in grpc ttheader; do
    row "$w" "$t" \
      "kitex_rate $kitex_server $t $w" "kitex_rate $rill_server $t $w" \
      "rill_rate $kitex_server $t $w" "rill_rate $rill_server $t $w"
  done
done
# PingPong in Kitex's Protobuf (echo.proto's service): Kitex's client of kitex_gen/protobuf,
# ours with the proto codec; Kitex's server is kitex-server --idl protobuf.
row unary "ttheader, protobuf" \
  "kitex_rate $kitex_pb_server pingpong unary --api protobuf" \
  "kitex_rate $rill_server pingpong unary --api protobuf" \
  "rill_rate $kitex_pb_server ttheader unary --codec proto" \
  "rill_rate $rill_server ttheader unary --codec proto"
echo
echo "Each cell: the best of $rounds runs of $secs s, the four cells of a row in turn within each round."
