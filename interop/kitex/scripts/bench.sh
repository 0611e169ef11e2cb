#!/usr/bin/env bash
# `make bench-kitex`: Kitex's client (v0.16.3, --bench) drives Kitex's server and rillrpc's
# (kitex-echo-rill-server, release build) on the same Thrift echo work, in the same run,
# over each transport: server streaming (16 B messages of one EchoServer call), bidi
# ping-pong (Echo round trips) and unary (PingPong calls; over --transport ttheader they are
# TTHeader-framed PingPong requests, over grpc gRPC calls). Prints a markdown table of the
# rates and the ratio rill/Kitex; the machine is shared and noisy, so nothing is asserted.
#   scripts/bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS]
set -uo pipefail
kitex=${1:?usage: bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS]}
rust=${2:?usage: bench.sh KITEX_BIN_DIR RUST_RELEASE_DIR [SECONDS]}
secs=${3:-3}
logs=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$logs"
}
trap cleanup EXIT

start() {
  local name=$1; shift
  "$@" >"$logs/$name.stdout" 2>"$logs/$name.stderr" &
  pids+=($!)
  addr=
  for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on //p' "$logs/$name.stdout")
    [ -n "$addr" ] && return
    sleep 0.05
  done
  echo "bench-kitex: $name did not start"; cat "$logs/$name.stderr"; exit 1
}

start kitex-server "$kitex/kitex-server" --port 0
kitex_server=$addr
start rill-server "$rust/kitex-echo-rill-server" --port 0
rill_server=$addr

rate() {
  local out
  out=$("$kitex/kitex-client" --target "$1" --transport "$2" --bench "$3" \
    --duration-secs "$secs" 2>&1) || { echo "FAILED: $out" >&2; echo 0; return; }
  sed -n 's/.* value=\([0-9]*\) .*/\1/p' <<<"$out"
}

echo "| workload (Kitex's client) | transport | Kitex server | rillrpc server | rill/Kitex |"
echo "|---|---|---:|---:|---:|"
for w in server-stream pingpong unary; do
  for t in grpc ttheader; do
    k=$(rate "$kitex_server" "$t" "$w")
    r=$(rate "$rill_server" "$t" "$w")
    ratio=$(awk -v r="$r" -v k="$k" 'BEGIN { if (k > 0) printf "%.2f", r / k; else print "n/a" }')
    printf '| %s 16 B | %s | %s | %s | %s |\n' "$w" "$t" "$k" "$r" "$ratio"
  done
done
