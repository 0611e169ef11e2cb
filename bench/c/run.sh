#!/usr/bin/env bash
# The C rows of the echo benchmark: the C client and the C server beside the Rust core, in
# the same run, on the same workloads. Prints ops/s and the C/Rust ratio.
#   bench/c/run.sh            (SECS=3 per cell, ROUNDS=2: the best of each)
#   BASELINE=DIR bench/c/run.sh
# Clients: bench/c/bench_client.c (C) and ffi-c/examples/bench_rust.rs (Rust core API),
# against the Rust core server (bench echo-server --impl rill). Each uses its side's
# fastest API (batches where messages come in bulk).
# Servers: ffi-c/tests/c/echo_server.c (C, one thread, a poller loop) and the Rust core
# server, both driven by the Rust core client. Then a diagnostic table: the Rust core driven
# from one thread outside its workers (ffi-c/examples/echo_outside.rs, bench_rust's
# unary64_outside), as the C loops are, to tell the ABI's cost from the thread hop's.
# BASELINE=DIR: DIR is a checkout of an older commit (`git worktree add DIR fe7ff20`). Its
# library (`make c-lib C_PROFILE=release`), Rust examples and echo-server are built there,
# in BASELINE_TARGET (default DIR/target), and the C programs of this tree are compiled
# against that library: the same table is measured for both builds, each cell's rounds
# taking turns between them, then a table of after/before per cell.
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SECS=${SECS:-3}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"unary1 unary1dl unary64 bidi stream"}
BASELINE=${BASELINE:-}
BASELINE_TARGET=${BASELINE_TARGET:-${BASELINE:+$BASELINE/target}}

BUILDS=(after)
declare -A TREE=([after]=$SRC) TARGET=([after]=$CARGO_TARGET_DIR)
if [ -n "$BASELINE" ]; then
    BUILDS=(after before)
    TREE[before]=$(cd "$BASELINE" && pwd)
    TARGET[before]=$BASELINE_TARGET
fi

# build B: B's library, Rust programs and echo-server in its own tree, and this tree's C
# programs against its library (its installed header: a changed ABI fails here, loudly).
build() {
    local tree=${TREE[$1]} target=${TARGET[$1]} p=${TARGET[$1]}/c-release
    (cd "$tree" && export CARGO_TARGET_DIR=$target &&
        make --no-print-directory c-lib C_PROFILE=release >/dev/null &&
        cargo build --quiet --release -p rill-bench --bin echo-server &&
        cargo build --quiet --release -p rillrpc-ffi --example bench_rust --example echo_outside)
    cc -O2 -I"$p/include" -I"$SRC/examples/c" "$SRC/bench/c/bench_client.c" \
        -o "$p/bench_client" -L"$p/lib" -lrillrpc -Wl,-rpath,"$p/lib"
    cc -O2 -I"$p/include" -I"$SRC/examples/c" -I"$SRC/ffi-c/tests/c" \
        "$SRC/ffi-c/tests/c/echo_server.c" -o "$p/c_echo_server" \
        -L"$p/lib" -lrillrpc -Wl,-rpath,"$p/lib"
}
for b in "${BUILDS[@]}"; do build "$b"; done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # start CMD... ; sets ADDR
    local out; out=$(mktemp)
    "$@" >"$out" 2>/dev/null &
    pids+=($!)
    for _ in $(seq 100); do
        ADDR=$(sed -n 's/^listening on //p' "$out" | head -1)
        [ -n "$ADDR" ] && { rm -f "$out"; return; }
        sleep 0.1
    done
    echo "server did not start: $*" >&2; exit 1
}
declare -A RUST_CLIENT C_CLIENT RUST_SERVER C_SERVER OUTSIDE_SERVER
for b in "${BUILDS[@]}"; do
    t=${TARGET[$b]}
    RUST_CLIENT[$b]=$t/release/examples/bench_rust
    C_CLIENT[$b]=$t/c-release/bench_client
    start "$t/release/echo-server" --impl rill --port 0
    RUST_SERVER[$b]=$ADDR
    start "$t/c-release/c_echo_server" 0 --no-stdin
    C_SERVER[$b]=$ADDR
    start "$t/release/examples/echo_outside" 0
    OUTSIDE_SERVER[$b]=$ADDR
done

run() { # run CLIENT ADDR WORKLOAD: ops/s of one run; 0 from a client that lacks the
    # workload (a baseline's Rust client older than it)
    "$1" "http://$2" "$3" "$SECS" 2>/dev/null | awk '{print $2}' || echo 0
}
max() { awk -v a="$1" -v b="$2" 'BEGIN{print (b>a)?b:a}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN{print (b>0)?a/b:0}'; }

# Rounds interleave every cell (of both builds), so load that drifts during the run (other
# processes on the machine) weighs on each side alike; each cell keeps its best.
# V[build:workload:cell], cells: rc (Rust client), cc (C client), cs (C server), os (Rust
# server driven from one thread), ro/co (unary64 client, one thread / C).
declare -A V
for w in $WORKLOADS; do
    for b in "${BUILDS[@]}"; do
        for c in rc cc cs os; do V[$b:$w:$c]=0; done
    done
    for _ in $(seq "$ROUNDS"); do
        for b in "${BUILDS[@]}"; do
            V[$b:$w:rc]=$(max "${V[$b:$w:rc]}" "$(run "${RUST_CLIENT[$b]}" "${RUST_SERVER[$b]}" "$w")")
            V[$b:$w:cc]=$(max "${V[$b:$w:cc]}" "$(run "${C_CLIENT[$b]}" "${RUST_SERVER[$b]}" "$w")")
            V[$b:$w:cs]=$(max "${V[$b:$w:cs]}" "$(run "${RUST_CLIENT[$b]}" "${C_SERVER[$b]}" "$w")")
            V[$b:$w:os]=$(max "${V[$b:$w:os]}" "$(run "${RUST_CLIENT[$b]}" "${OUTSIDE_SERVER[$b]}" "$w")")
        done
    done
done
case " $WORKLOADS " in *" unary64 "*)
    for b in "${BUILDS[@]}"; do V[$b:unary64:ro]=0; V[$b:unary64:co]=0; done
    for _ in $(seq "$ROUNDS"); do
        for b in "${BUILDS[@]}"; do
            V[$b:unary64:ro]=$(max "${V[$b:unary64:ro]}" "$(run "${RUST_CLIENT[$b]}" "${RUST_SERVER[$b]}" unary64_outside)")
            V[$b:unary64:co]=$(max "${V[$b:unary64:co]}" "$(run "${C_CLIENT[$b]}" "${RUST_SERVER[$b]}" unary64)")
        done
    done
esac

table() { # table BUILD: the C table of one build
    local b=$1
    printf '%-9s | %14s %14s %7s | %14s %14s %7s\n' workload "Rust client" "C client" "C/Rust" \
        "Rust server" "C server" "C/Rust"
    printf -- '----------|---------------------------------------|---------------------------------------\n'
    for w in $WORKLOADS; do
        local rc=${V[$b:$w:rc]} cc=${V[$b:$w:cc]} cs=${V[$b:$w:cs]}
        # The Rust server's cell is the Rust client's: Rust client against Rust server.
        printf '%-9s | %14.0f %14.0f %7.2f | %14.0f %14.0f %7.2f\n' "$w" "$rc" "$cc" \
            "$(div "$cc" "$rc")" "$rc" "$cs" "$(div "$cs" "$rc")"
    done
    echo "(ops/s: unary1/unary1dl/unary64 = calls/s (unary1dl: each call with a 10 s deadline), bidi/stream = messages/s; 64-byte payloads; best of $ROUNDS x ${SECS}s, rounds interleaved)"
    echo
    # Diagnostic: the Rust core driven by one thread outside the runtime's workers, as a C
    # event loop drives its calls (the Rust client's unary1/bidi/stream already run that
    # way; its unary64 runs 64 tasks on the workers). C / this separates the cost of the C
    # ABI from the cost of the thread hop (a task spawn and wake-ups crossing threads).
    echo "Diagnostic: the Rust core driven from one thread outside its workers (as C's loops are)"
    printf '%-9s | %20s %14s %7s\n' workload "Rust, one thread" "C" "C/it"
    for w in $WORKLOADS; do
        printf '%-9s | %20.0f %14.0f %7.2f   (server)\n' "$w" "${V[$b:$w:os]}" "${V[$b:$w:cs]}" \
            "$(div "${V[$b:$w:cs]}" "${V[$b:$w:os]}")"
    done
    case " $WORKLOADS " in *" unary64 "*)
        printf '%-9s | %20.0f %14.0f %7.2f   (client)\n' unary64 "${V[$b:unary64:ro]}" \
            "${V[$b:unary64:co]}" "$(div "${V[$b:unary64:co]}" "${V[$b:unary64:ro]}")"
    esac
}

if [ -z "$BASELINE" ]; then
    table after
    exit 0
fi
echo "## after: $SRC"
echo
table after
echo
echo "## before: ${TREE[before]}"
echo
table before
echo
echo "## after / before (each cell against itself; below 1.00: slower after)"
echo
printf '%-9s | %12s %12s %12s %18s\n' workload "Rust client" "C client" "C server" "Rust one thread"
printf -- '----------|--------------------------------------------------------------\n'
for w in $WORKLOADS; do
    printf '%-9s | %12.2f %12.2f %12.2f %18.2f\n' "$w" \
        "$(div "${V[after:$w:rc]}" "${V[before:$w:rc]}")" \
        "$(div "${V[after:$w:cc]}" "${V[before:$w:cc]}")" \
        "$(div "${V[after:$w:cs]}" "${V[before:$w:cs]}")" \
        "$(div "${V[after:$w:os]}" "${V[before:$w:os]}")"
done
case " $WORKLOADS " in *" unary64 "*)
    printf '%-9s | %12.2f %12.2f %12s %18s   (unary64 clients: one thread, C)\n' unary64 \
        "$(div "${V[after:unary64:ro]}" "${V[before:unary64:ro]}")" \
        "$(div "${V[after:unary64:co]}" "${V[before:unary64:co]}")" "" ""
esac
