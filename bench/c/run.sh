#!/usr/bin/env bash
# The C rows of the echo benchmark: the C client and the C server beside the Rust core, in
# the same run, on the same workloads. Prints ops/s and the C/Rust ratio.
#   bench/c/run.sh            (SECS=3 per cell, ROUNDS=2: the best of each)
# Clients: bench/c/bench_client.c (C) and ffi-c/examples/bench_rust.rs (Rust core API),
# against the Rust core server (bench echo-server --impl rill).
# Servers: ffi-c/tests/c/echo_server.c (C, one thread, a poll loop) and the Rust core server,
# both driven by the Rust core client.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SECS=${SECS:-3}
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"unary1 unary64 bidi stream"}
P=$CARGO_TARGET_DIR/c-release

make --no-print-directory c-lib C_PROFILE=release >/dev/null
cargo build --quiet --release -p rill-bench --bin echo-server
cargo build --quiet --release -p rillrpc-ffi --example bench_rust
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

best() { # best CLIENT ADDR WORKLOAD: best ops/s of ROUNDS runs
    local b=0 r
    for _ in $(seq "$ROUNDS"); do
        r=$("$1" "http://$2" "$3" "$SECS" | awk '{print $2}')
        b=$(awk -v a="$b" -v c="$r" 'BEGIN{print (c>a)?c:a}')
    done
    echo "$b"
}

printf '%-9s | %14s %14s %7s | %14s %14s %7s\n' workload "Rust client" "C client" "C/Rust" \
    "Rust server" "C server" "C/Rust"
printf -- '----------|---------------------------------------|---------------------------------------\n'
for w in $WORKLOADS; do
    rc=$(best "$RUST_CLIENT" "$RUST_SERVER" "$w")
    cc_=$(best "$P/bench_client" "$RUST_SERVER" "$w")
    rs=$rc
    cs=$(best "$RUST_CLIENT" "$C_SERVER" "$w")
    printf '%-9s | %14.0f %14.0f %7.2f | %14.0f %14.0f %7.2f\n' "$w" "$rc" "$cc_" \
        "$(awk -v a="$cc_" -v b="$rc" 'BEGIN{print a/b}')" "$rs" "$cs" \
        "$(awk -v a="$cs" -v b="$rs" 'BEGIN{print a/b}')"
done
echo "(ops/s: unary1/unary64 = calls/s, bidi/stream = messages/s; 64-byte payloads; best of $ROUNDS x ${SECS}s)"
