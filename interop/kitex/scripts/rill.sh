#!/usr/bin/env bash
# `make test-kitex`: rillrpc and real Kitex (v0.16.3) meet over gRPC with Thrift payloads
# (application/grpc+thrift), both ways, and over TTHeader Streaming (StreamX) and Thrift
# PingPong, Kitex's client against our server (one port for all):
#   kitex-client --transport grpc (StreamX and --api classic)  ->  kitex-echo-rill-server
#   kitex-client --transport ttheader (streams over TTHeader
#     Streaming, PingPong over TTHeader-framed Thrift)          ->  kitex-echo-rill-server
#   kitex-client --transport pingpong --pingpong ttheader|framed|buffered
#                                                               ->  kitex-echo-rill-server
#   kitex-echo-rill-client --transport grpc|ttheader            ->  kitex-server
# and PingPong in Kitex's Protobuf (KitexProtobuf in TTHeaderFramed), echo.proto's service:
#   kitex-client --transport pingpong --api protobuf            ->  kitex-echo-rill-server
#   kitex-echo-rill-client --transport ttheader --codec protobuf
#                                                               ->  kitex-server --idl protobuf
# The default checks include `deadline` (a short deadline on calls the server answers
# slowly: the servers' "sleep:<ms>" payloads). Then the fault runs, each with a server
# started for it alone, which the script SIGKILLs mid-stream when the client prints
# `READY kill` (and starts again on the same port on `READY restart`):
#   kitex-echo-rill-client --transport grpc|ttheader
#     --check killed_server_streaming,killed_bidi              ->  kitex-server (killed)
#   kitex-client --transport grpc|ttheader
#     --check killed_server_streaming | killed_bidi            ->  kitex-echo-rill-server (killed)
# (a fresh kitex-client per case: after a failed connect, Kitex v0.16.3's TTHeader Streaming
# client hangs later streams to that address past their deadline).
# Each run prints its PASS/FAIL lines; a run fails if its client exits non-zero, prints a
# FAIL, or passes no check at all. Ends with a summary table; exits 1 if any run failed.
#   scripts/rill.sh KITEX_BIN_DIR RUST_BIN_DIR
set -uo pipefail
kitex=${1:?usage: rill.sh KITEX_BIN_DIR RUST_BIN_DIR}
rust=${2:?usage: rill.sh KITEX_BIN_DIR RUST_BIN_DIR}
what=test-kitex
# shellcheck source=servers.sh
source "$(dirname "$0")/servers.sh"

start kitex-echo-rill-server "$rust/kitex-echo-rill-server" --port 0
rill_server=$addr
start kitex-server "$kitex/kitex-server" --port 0
kitex_server=$addr
start kitex-server-protobuf "$kitex/kitex-server" --port 0 --idl protobuf
kitex_pb_server=$addr

rows=()
failed=0
passes=0
fails=0
# run LABEL SERVER_NAME CMD...: one client run, its lines as they come, then its row.
run() {
  local label=$1 server=$2; shift 2
  echo "== $label -> $server"
  local out rc=0
  out=$(timeout 120 "$@" 2>&1) || rc=$?
  echo "$out"
  row "$label" "$server" "$rc" "$out"
}

# row LABEL SERVER RC OUTPUT: counts a run's PASS and FAIL lines into its row.
row() {
  local label=$1 server=$2 rc=$3 out=$4
  local pass fail verdict=ok
  pass=$(grep -c '^PASS ' <<<"$out")
  fail=$(grep -c '^FAIL ' <<<"$out")
  passes=$((passes + pass)); fails=$((fails + fail))
  if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ] || [ "$pass" -eq 0 ]; then
    verdict="FAILED (exit $rc)"; failed=1
  fi
  rows+=("$(printf '%-66s %-31s %4s %4s  %s' "$label" "$server" "$pass" "$fail" "$verdict")")
}

run "kitex-client --transport grpc" kitex-echo-rill-server \
  "$kitex/kitex-client" --target "$rill_server" --transport grpc
run "kitex-client --transport grpc --api classic" kitex-echo-rill-server \
  "$kitex/kitex-client" --target "$rill_server" --transport grpc --api classic
run "kitex-client --transport ttheader" kitex-echo-rill-server \
  "$kitex/kitex-client" --target "$rill_server" --transport ttheader
run "kitex-client --transport pingpong --pingpong ttheader" kitex-echo-rill-server \
  "$kitex/kitex-client" --target "$rill_server" --transport pingpong --pingpong ttheader
run "kitex-client --transport pingpong --pingpong framed" kitex-echo-rill-server \
  "$kitex/kitex-client" --target "$rill_server" --transport pingpong --pingpong framed
run "kitex-client --transport pingpong --pingpong buffered" kitex-echo-rill-server \
  "$kitex/kitex-client" --target "$rill_server" --transport pingpong --pingpong buffered
run "kitex-echo-rill-client --transport grpc" kitex-server \
  "$rust/kitex-echo-rill-client" --target "$kitex_server" --transport grpc
run "kitex-echo-rill-client --transport ttheader" kitex-server \
  "$rust/kitex-echo-rill-client" --target "$kitex_server" --transport ttheader
run "kitex-client --transport pingpong --api protobuf" kitex-echo-rill-server \
  "$kitex/kitex-client" --target "$rill_server" --transport pingpong --api protobuf
run "kitex-echo-rill-client --transport ttheader --codec protobuf" "kitex-server --idl protobuf" \
  "$rust/kitex-echo-rill-client" --target "$kitex_pb_server" --transport ttheader --codec protobuf

# A fault run's bound: its client is killed past it, and the run fails.
FAULT_SECS=30
# stop PID: SIGKILLs one server this script started, reaps it, and drops it from pids (so
# that the cleanup does not signal its number again).
stop() {
  local p=$1 keep=() q
  kill -KILL "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  for q in "${pids[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  pids=("${keep[@]}")
}
# fault LABEL SERVER_NAME SERVER_BIN CLIENT...: a client run against a server started for
# it alone (SERVER_BIN --port 0), with --target added. On the client's line `READY kill` the
# server is SIGKILLed (and reaped); on `READY restart` it is started again on the same port
# and the client is told so by a line on its stdin. The client is killed after FAULT_SECS.
fault() {
  local label=$1 server=$2 bin=$3; shift 3
  local name="$server-killed"
  echo "== $label -> $server (killed)"
  start "$name" "$bin" --port 0
  local spid=${pids[-1]} target=$addr port=${addr##*:}
  local fifo_in="$logs/$name.in" fifo_out="$logs/$name.out"
  rm -f "$fifo_in" "$fifo_out"
  mkfifo "$fifo_in" "$fifo_out"
  timeout "$FAULT_SECS" "$@" --target "$target" <"$fifo_in" >"$fifo_out" 2>&1 &
  local cpid=$! cin cout line out="" rc=0
  exec {cin}>"$fifo_in" {cout}<"$fifo_out"
  while IFS= read -r line <&"$cout"; do
    echo "$line"
    out+="$line"$'\n'
    case $line in
      "READY kill")
        stop "$spid"
        echo "($name: SIGKILLed)";;
      "READY restart")
        # Not holding the client's pipes open.
        start "$name" "$bin" --port "$port" {cin}>&- {cout}<&-
        spid=${pids[-1]}
        echo "($name: restarted on port $port)"
        echo restarted >&"$cin";;
    esac
  done
  wait "$cpid" || rc=$?
  exec {cin}>&- {cout}<&-
  stop "$spid"
  row "$label" "$server (killed)" "$rc" "$out"
}

for t in grpc ttheader; do
  fault "kitex-echo-rill-client --transport $t --check killed_*" kitex-server "$kitex/kitex-server" \
    "$rust/kitex-echo-rill-client" --transport "$t" --check killed_server_streaming,killed_bidi
done
# A fresh kitex-client (and server) per case.
for t in grpc ttheader; do
  for c in killed_server_streaming killed_bidi; do
    fault "kitex-client --transport $t --check $c" kitex-echo-rill-server \
      "$rust/kitex-echo-rill-server" "$kitex/kitex-client" --transport "$t" --check "$c"
  done
done

echo
printf '%-66s %-31s %4s %4s  %s\n' client server pass fail result
printf '%s\n' "${rows[@]}"
echo "test-kitex: $passes passed, $fails failed"
if [ $failed -ne 0 ]; then
  for name in kitex-echo-rill-server kitex-server kitex-server-protobuf kitex-echo-rill-server-killed kitex-server-killed; do
    echo "--- $name stderr:"; cat "$logs/$name.stderr"
  done
  echo "test-kitex: FAILED"
  exit 1
fi
echo "test-kitex: every check passed, both ways"
