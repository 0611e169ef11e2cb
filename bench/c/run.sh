#!/usr/bin/env bash
# The C rows of the echo benchmark: the C client and the C server beside the Rust core, in
# the same run, on the same workloads. Prints ops/s and the C/Rust ratio.
#   bench/c/run.sh            (SECS=3 per cell, ROUNDS=2: the best of each)
# Clients: bench/c/bench_client.c (C) and ffi-c/examples/bench_rust.rs (Rust core API),
# against the Rust core server (bench echo-server --impl rill). Each uses its side's
# fastest API (batches where messages come in bulk).
# Servers: ffi-c/tests/c/echo_server.c (C, one thread, a poller loop) and the Rust core
# server, both driven by the Rust core client. Then a diagnostic table: the Rust core driven
# from one thread outside its workers (ffi-c/examples/echo_outside.rs, bench_rust's
# unary64_outside), as the C loops are, to tell the ABI's cost from the thread hop's.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SECS=${SECS:-3}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"unary1 unary64 bidi stream"}
P=$CARGO_TARGET_DIR/c-release

make --no-print-directory c-lib C_PROFILE=release >/dev/null
cargo build --quiet --release -p rill-bench --bin echo-server
cargo build --quiet --release -p rillrpc-ffi --example bench_rust --example echo_outside
cc -O2 -Iinclude -Iexamples/c bench/c/bench_client.c -o "$P/bench_client" \
    -L"$P/lib" -lrillrpc -Wl,-rpath,"$P/lib"
cc -O2 -Iinclude -Iexamples/c -Iffi-c/tests/c ffi-c/tests/c/echo_server.c -o "$P/c_echo_server" \
    -L"$P/lib" -lrillrpc -Wl,-rpath,"$P/lib"
RUST_CLIENT=$CARGO_TARGET_DIR/release/examples/bench_rust

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
start "$CARGO_TARGET_DIR/release/echo-server" --impl rill --port 0
RUST_SERVER=$ADDR
start "$P/c_echo_server" 0 --no-stdin
C_SERVER=$ADDR
start "$CARGO_TARGET_DIR/release/examples/echo_outside" 0
OUTSIDE_SERVER=$ADDR

run() { # run CLIENT ADDR WORKLOAD: ops/s of one run
    "$1" "http://$2" "$3" "$SECS" | awk '{print $2}'
}
max() { awk -v a="$1" -v b="$2" 'BEGIN{print (b>a)?b:a}'; }

printf '%-9s | %14s %14s %7s | %14s %14s %7s\n' workload "Rust client" "C client" "C/Rust" \
    "Rust server" "C server" "C/Rust"
printf -- '----------|---------------------------------------|---------------------------------------\n'
declare -A OUTSIDE
for w in $WORKLOADS; do
    # Rounds interleave the three cells, so load that drifts during the run (other
    # processes on the machine) weighs on each side alike; each cell keeps its best.
    rc=0 cc_=0 cs=0 os=0
    for _ in $(seq "$ROUNDS"); do
        rc=$(max "$rc" "$(run "$RUST_CLIENT" "$RUST_SERVER" "$w")")
        cc_=$(max "$cc_" "$(run "$P/bench_client" "$RUST_SERVER" "$w")")
        cs=$(max "$cs" "$(run "$RUST_CLIENT" "$C_SERVER" "$w")")
        os=$(max "$os" "$(run "$RUST_CLIENT" "$OUTSIDE_SERVER" "$w")")
    done
    OUTSIDE[$w]="$os $cs"
    rs=$rc
    printf '%-9s | %14.0f %14.0f %7.2f | %14.0f %14.0f %7.2f\n' "$w" "$rc" "$cc_" \
        "$(awk -v a="$cc_" -v b="$rc" 'BEGIN{print a/b}')" "$rs" "$cs" \
        "$(awk -v a="$cs" -v b="$rs" 'BEGIN{print a/b}')"
done
echo "(ops/s: unary1/unary64 = calls/s, bidi/stream = messages/s; 64-byte payloads; best of $ROUNDS x ${SECS}s, rounds interleaved)"
echo
# Diagnostic: the Rust core driven by one thread outside the runtime's workers, as a C
# event loop drives its calls (the Rust client's unary1/bidi/stream already run that way;
# its unary64 runs 64 tasks on the workers). C / this separates the cost of the C ABI from
# the cost of the thread hop (a task spawn and wake-ups crossing threads).
echo "Diagnostic: the Rust core driven from one thread outside its workers (as C's loops are)"
printf '%-9s | %20s %14s %7s\n' workload "Rust, one thread" "C" "C/it"
for w in $WORKLOADS; do
    set -- ${OUTSIDE[$w]}
    printf '%-9s | %20.0f %14.0f %7.2f   (server)\n' "$w" "$1" "$2" \
        "$(awk -v a="$2" -v b="$1" 'BEGIN{print a/b}')"
done
case " $WORKLOADS " in *" unary64 "*)
    ro=0 cc_=0
    for _ in $(seq "$ROUNDS"); do
        ro=$(max "$ro" "$(run "$RUST_CLIENT" "$RUST_SERVER" unary64_outside)")
        cc_=$(max "$cc_" "$(run "$P/bench_client" "$RUST_SERVER" unary64)")
    done
    printf '%-9s | %20.0f %14.0f %7.2f   (client)\n' unary64 "$ro" "$cc_" \
        "$(awk -v a="$cc_" -v b="$ro" 'BEGIN{print a/b}')"
esac
