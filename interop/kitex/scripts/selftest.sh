#!/usr/bin/env bash
# kitex-client against kitex-server in every transport: pingpong, ttheader (TTHeader
# Streaming), grpc; grpc once more with the classic generated code (--api classic); and
# PingPong in its other framings (--pingpong ttheader|framed|buffered; the default is
# ttheader-framed).
#   scripts/selftest.sh BIN_DIR
# Fails if any check fails (a SKIP is fine: the pingpong transport skips the stream checks).
set -uo pipefail
bin=${1:?usage: selftest.sh BIN_DIR}
log=$(mktemp)
"$bin/kitex-server" --port 0 >"$log" 2>"$log.err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log" "$log.err"' EXIT
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/^listening on //p' "$log")
  [ -n "$addr" ] && break
  kill -0 $server 2>/dev/null || break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "kitex-selftest: kitex-server did not start"; cat "$log.err"; exit 1
fi
echo "kitex-server listening on $addr"
rc=0
for run in "pingpong streamx ttheader-framed" "ttheader streamx ttheader-framed" \
  "grpc streamx ttheader-framed" "grpc classic ttheader-framed" \
  "pingpong streamx ttheader" "pingpong streamx framed" "pingpong streamx buffered"; do
  set -- $run
  echo "== kitex-client --transport $1 --api $2 --pingpong $3"
  timeout 120 "$bin/kitex-client" --target "$addr" --transport "$1" --api "$2" --pingpong "$3" || rc=1
done
if [ $rc -ne 0 ]; then
  echo "kitex-selftest: FAILED; kitex-server's log:"; cat "$log.err"
else
  echo "kitex-selftest: every check passed"
fi
exit $rc
