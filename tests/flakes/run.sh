#!/usr/bin/env bash
# Flakes (issue 16): runs each suite RUNS times on a loaded machine, two suites at once,
# and reports every failure with its log. The suites are `make` targets (test-rust,
# test-node, ...); they are split into two lanes that run side by side, each lane going
# round its suites RUNS times, so that every run of a suite has another suite beside it.
#
#     tests/flakes/run.sh RUNS SUITE [SUITE ...]
#
# Logs of failed runs go to $CARGO_TARGET_DIR/flakes/<suite>.<run>.log; the table at the
# end gives each suite's runs and failures. Exits 1 if any run failed.
set -uo pipefail
runs=$1; shift
out=${CARGO_TARGET_DIR:-target}/flakes
mkdir -p "$out"
rm -f "$out"/*.log "$out"/results

lane() {
  local i s start rc
  for i in $(seq 1 "$runs"); do
    for s in "$@"; do
      start=$SECONDS
      make --no-print-directory "$s" > "$out/$s.$i.run" 2>&1
      rc=$?
      echo "$s $i $rc $((SECONDS - start))" >> "$out/results"
      if [ $rc -ne 0 ]; then mv "$out/$s.$i.run" "$out/$s.$i.log"; echo "flakes: $s run $i FAILED ($out/$s.$i.log)"; else rm -f "$out/$s.$i.run"; fi
    done
  done
}

# Two lanes: the suites alternately, so that a long suite does not run beside itself.
a=(); b=()
for s in "$@"; do
  if [ ${#a[@]} -le ${#b[@]} ]; then a+=("$s"); else b+=("$s"); fi
done
lane "${a[@]}" & first=$!
if [ ${#b[@]} -gt 0 ]; then lane "${b[@]}" & second=$!; wait $second; fi
wait $first

echo "| suite | runs | failed | seconds per run |"
echo "|---|---:|---:|---:|"
failed=0
for s in "$@"; do
  awk -v s="$s" '$1 == s { n++; t += $4; if ($3 != 0) f++ } END {
    printf "| %s | %d | %d | %d |\n", s, n, f, n ? t / n : 0 }' "$out/results"
  if awk -v s="$s" '$1 == s && $3 != 0 { bad = 1 } END { exit !bad }' "$out/results"; then failed=1; fi
done
exit $failed
