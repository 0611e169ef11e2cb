# Sourced by rill.sh and bench.sh: servers started in the background, their addresses read
# from their "listening on" lines, and stopped (with the logs removed) when the script ends.
# The sourcing script names itself in `what` for messages.
logs=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$logs"
}
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background and sets addr to the address of its
# "listening on" line (not in a $(...) subshell, so that pids keeps the process).
start() {
  local name=$1; shift
  # Emptied here, not by the background job's redirection: a server started again under
  # the same name must not be found listening by its predecessor's line before the job
  # has run (test-kitex's killed_* runs, which restart a server on its port).
  : >"$logs/$name.stdout"
  "$@" >"$logs/$name.stdout" 2>"$logs/$name.stderr" &
  pids+=($!)
  addr=
  for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on //p' "$logs/$name.stdout")
    [ -n "$addr" ] && return
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.05
  done
  echo "$what: $name did not start"; cat "$logs/$name.stderr"; exit 1
}
