#!/usr/bin/env bash
# Records the wire bytes of kitex-client against kitex-server through kitex-wiretap: one
# file per transport and check, OUT_DIR/<transport>-<check>.txt (the sources of WIRE.md).
#   scripts/capture.sh BIN_DIR OUT_DIR
set -uo pipefail
bin=${1:?usage: capture.sh BIN_DIR OUT_DIR}
out=${2:?usage: capture.sh BIN_DIR OUT_DIR}
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background, waits for its "listening on" and sets
# addr to that address (not in a $(...) subshell, so that pids keeps the process).
start() {
  local name=$1; shift
  "$@" >"$out/.$name.stdout" 2>"$out/.$name.stderr" &
  pids+=($!)
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$out/.$name.stdout")
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "capture: $name did not start" >&2; cat "$out/.$name.stderr" >&2; exit 1; }
}

start server "$bin/kitex-server" --port 0
server=$addr
rc=0
for transport in pingpong ttheader grpc; do
  for check in unary server_streaming client_streaming bidi error_status metadata cancel; do
    if [ $transport = pingpong ]; then
      case $check in server_streaming|client_streaming|bidi|cancel) continue;; esac
    fi
    file="$out/$transport-$check.txt"
    start "tap-$transport-$check" "$bin/kitex-wiretap" --target "$server" --out "$file"
    tap=$addr
    result=$(timeout 60 "$bin/kitex-client" --target "$tap" --transport $transport --check $check 2>&1) || rc=1
    echo "$transport: $result"
    sleep 0.3 # the last frames reach the tap
    kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
    sed -i "1i # kitex-client --transport $transport --check $check  =>  $result" "$file"
  done
done
# PingPong's other framings (kitex-client --pingpong), one unary check each.
for framing in ttheader framed buffered; do
  file="$out/pingpong-unary-$framing.txt"
  start "tap-pingpong-$framing" "$bin/kitex-wiretap" --target "$server" --out "$file"
  tap=$addr
  result=$(timeout 60 "$bin/kitex-client" --target "$tap" --transport pingpong --pingpong $framing --check unary 2>&1) || rc=1
  echo "pingpong --pingpong $framing: $result"
  sleep 0.3
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
  sed -i "1i # kitex-client --transport pingpong --pingpong $framing --check unary  =>  $result" "$file"
done
# PingPong in Kitex's Protobuf (kitex-client --api protobuf), against kitex-server --idl
# protobuf.
start server-protobuf "$bin/kitex-server" --port 0 --idl protobuf
pb_server=$addr
for check in unary error_status; do
  file="$out/pingpong-protobuf-$check.txt"
  start "tap-pingpong-protobuf-$check" "$bin/kitex-wiretap" --target "$pb_server" --out "$file"
  tap=$addr
  result=$(timeout 60 "$bin/kitex-client" --target "$tap" --transport pingpong --api protobuf --check $check 2>&1) || rc=1
  echo "pingpong --api protobuf: $result"
  sleep 0.3
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null; unset 'pids[-1]'
  sed -i "1i # kitex-client --transport pingpong --api protobuf --check $check  =>  $result" "$file"
done
rm -f "$out"/.*.stdout "$out"/.*.stderr
exit $rc
