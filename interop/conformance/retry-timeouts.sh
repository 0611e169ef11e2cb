#!/usr/bin/env bash
# Runs a failed server-mode conformance run's Timeouts cases once more, when they are the
# only cases that failed; exits 0 if every one of them passes the second time.
#
# usage: retry-timeouts.sh LOG RUNNER RUNNER-ARGS... -- SERVER
#
# Why: a Timeouts case has the reference client give up after 200 ms while the server
# sleeps 1.5 s. The server's clock starts when the request arrives and the client sends
# the time left, rounded down to the millisecond, so the client's deadline fires first
# (about 2 ms first on loopback). On a loaded machine its timer can fire late, after the
# server's answer: if it fires while the client's HTTP/2 reader has taken the answer's
# HEADERS but not yet its DATA, the client gives up mid-body and its wire check reports
# "connect error JSON: unexpected end of JSON input". That race is in the client and
# would hit connect-go's server the same way; a case that fails twice is a real failure.
set -euo pipefail

log=$1
shift
mapfile -t failed < <(sed -n 's/^FAILED: \(.*\):$/\1/p' "$log")
if [ "${#failed[@]}" -eq 0 ]; then
  echo "retry-timeouts: no failed case named in $log"
  exit 1
fi
runs=()
for name in "${failed[@]}"; do
  case "$name" in
    Timeouts/*) runs+=(--run "$name") ;;
    *)
      echo "retry-timeouts: $name is not a Timeouts case; not retried"
      exit 1
      ;;
  esac
done

runner=$1
shift
args=()
while [ "$1" != "--" ]; do
  args+=("$1")
  shift
done
echo "retry-timeouts: ${#failed[@]} Timeouts case(s) failed; running them once more"
"$runner" "${args[@]}" "${runs[@]}" "$@"
