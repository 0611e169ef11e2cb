# The attack suite (interop/attack/, issue 16): hostile HTTP/2 peers against the rillrpc
# echo server and tonic's, side by side, each attack followed by a normal client that must
# get through within ATTACK_BOUND seconds; prints what each server did and its peak memory.
# Loopback only, every attack bounded in count and time (about 30 s in all).

ATTACK_BOUND ?= 10

.PHONY: test-attack
TEST_TARGETS += test-attack

test-attack:
	cargo build -p rill-bench --bin echo-server -p rill-attack --bin attack
	$(CARGO_TARGET_DIR)/debug/attack --bound $(ATTACK_BOUND)
