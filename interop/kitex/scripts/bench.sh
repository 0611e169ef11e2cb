#!/usr/bin/env bash
# `make bench-kitex`: Kitex (v0.16.3) and rillrpc on the same Thrift echo work, in the same
# run, each side against the other's: Kitex's client (kitex-client --bench) drives Kitex's
# server and rillrpc's (kitex-echo-rill-server), and rillrpc's client (echo-client --codec
# thrift) drives the same two, over each transport: server streaming (16 B messages of one
# EchoServer call), bidi ping-pong (Echo round trips) and unary (PingPong calls; over
# ttheader they are TTHeader-framed PingPong requests, over grpc gRPC calls), and PingPong
# in Kitex's Protobuf over TTHeader (kitex-server --idl protobuf for Kitex's side). Prints a
# markdown table of the rates, and the ratios of rillrpc's server and rillrpc's client
# against Kitex's under the same peer; then a table of the CPU each side used in each cell's
# best run, which shows which side paced it (a side near a whole core, or both together
# near the machine's two). The machine is shared and noisy, nothing is asserted.
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
declare -A pid_of
pid_of[$addr]=${pids[-1]}
start rill-server "$rust/kitex-echo-rill-server" --port 0
rill_server=$addr
pid_of[$addr]=${pids[-1]}
start kitex-server-protobuf "$kitex/kitex-server" --port 0 --idl protobuf
kitex_pb_server=$addr
pid_of[$addr]=${pids[-1]}
hz=$(getconf CLK_TCK)

# ticks PID: the process's user and system time so far, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# measured ADDR CMD...: runs a client against the server at ADDR; prints its rate, and the
# cores the client and the server used over the client's whole run (its set-up included).
measured() {
  local spid=${pid_of[$1]} t0 t1 rate wall user sys
  shift
  t0=$(ticks "$spid")
  { TIMEFORMAT='%R %U %S'; time "$@" >"$logs/client.out" 2>&1; } 2>"$logs/client.time" ||
    { echo "FAILED: $(cat "$logs/client.out")" >&2; echo "0 0 0"; return; }
  t1=$(ticks "$spid")
  rate=$(sed -n 's/.* value=\([0-9]*\) .*/\1/p' "$logs/client.out" | head -1)
  read -r wall user sys <"$logs/client.time"
  awk -v r="${rate:-0}" -v w="$wall" -v u="$user" -v s="$sys" -v d="$((t1 - t0))" -v hz="$hz" \
    'BEGIN { if (w <= 0) w = 1; printf "%s %.2f %.2f\n", r, (u + s) / w, d / hz / w }'
}

# kitex_rate ADDR TRANSPORT WORKLOAD [ARGS...], rill_rate ADDR TRANSPORT WORKLOAD [ARGS...]:
# one run: its rate and the two sides' cores (`measured`). ARGS: the client's own, --codec
# thrift by default for ours.
kitex_rate() {
  measured "$1" "$kitex/kitex-client" --target "$1" --transport "$2" --bench "$3" "${@:4}" \
    --duration-secs "$secs"
}
rill_rate() {
  local codec=(--codec thrift)
  [ $# -gt 3 ] && codec=("${@:4}")
  measured "$1" "$rust/echo-client" --impl rill --addr "$1" --protocol "$2" --workload "$3" \
    "${codec[@]}" --size 16 --duration-secs "$secs"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# row LABEL TRANSPORT KK KR RK RR: each of the four cells is a command (a kitex_rate or
# rill_rate call, quoted), run ROUNDS times in turn; prints the row with the best rates, and
# keeps the cores of each best run for the CPU table.
cpu_rows=()
row() {
  local label=$1 transport=$2 best=(0 0 0 0) cores=("" "" "" "") r i rate c s
  shift 2
  for ((r = 0; r < rounds; r++)); do
    for i in 0 1 2 3; do
      read -r rate c s <<<"$(eval "${@:i+1:1}")"
      if [ "${rate:-0}" -ge "${best[i]}" ]; then
        best[i]=${rate:-0}
        cores[i]="$c / $s"
      fi
    done
  done
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$transport" "${best[@]}" \
    "$(ratio "${best[1]}" "${best[0]}")" "$(ratio "${best[2]}" "${best[0]}")"
  cpu_rows+=("$(printf '| %s | %s | %s | %s | %s | %s |' "$label" "$transport" "${cores[@]}")")
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
echo
echo "| cores used, client / server, in each cell's best run | transport | Kitex → Kitex | Kitex → rill | rill → Kitex | rill → rill |"
echo "|---|---|---:|---:|---:|---:|"
printf '%s\n' "${cpu_rows[@]}"
echo
echo "Cores: the client's user and system time, and the server's over the same span, each over the client's whole run (its set-up included), on a machine of $(nproc) cores."
