#!/usr/bin/env bash
# `make test-kitex`: rillrpc and real Kitex (v0.16.3) meet over gRPC with Thrift payloads
# (application/grpc+thrift), both ways, and over TTHeader Streaming (StreamX) and Thrift
# PingPong, Kitex's client against our server (one port for all):
#   kitex-client --transport grpc (StreamX and --api classic)  ->  kitex-echo-rill-server
#   kitex-client --transport ttheader (streams over TTHeader
#     Streaming, PingPong over TTHeader-framed Thrift)          ->  kitex-echo-rill-server
#   kitex-client --transport pingpong --pingpong ttheader|framed  ->  kitex-echo-rill-server
#   kitex-echo-rill-client --transport grpc|ttheader            ->  kitex-server
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
  local pass fail verdict=ok
  pass=$(grep -c '^PASS ' <<<"$out")
  fail=$(grep -c '^FAIL ' <<<"$out")
  passes=$((passes + pass)); fails=$((fails + fail))
  if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ] || [ "$pass" -eq 0 ]; then
    verdict="FAILED (exit $rc)"; failed=1
  fi
  rows+=("$(printf '%-56s %-24s %4s %4s  %s' "$label" "$server" "$pass" "$fail" "$verdict")")
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
run "kitex-echo-rill-client --transport grpc" kitex-server \
  "$rust/kitex-echo-rill-client" --target "$kitex_server" --transport grpc
run "kitex-echo-rill-client --transport ttheader" kitex-server \
  "$rust/kitex-echo-rill-client" --target "$kitex_server" --transport ttheader

echo
printf '%-56s %-24s %4s %4s  %s\n' client server pass fail result
printf '%s\n' "${rows[@]}"
echo "test-kitex: $passes passed, $fails failed"
if [ $failed -ne 0 ]; then
  for name in kitex-echo-rill-server kitex-server; do
    echo "--- $name stderr:"; cat "$logs/$name.stderr"
  done
  echo "test-kitex: FAILED"
  exit 1
fi
echo "test-kitex: every check passed, both ways"
