# The fault suite (interop/faults/, issue 16): a server process SIGKILLed and SIGSTOPped
# under a client holding a call of every shape, a client process killed and frozen under
# the server, a link delayed, down and cut (tc netem in a network namespace of its own where
# the kernel has it, SKIP otherwise; and a userspace fault proxy always), and a graceful
# shutdown under 1,000 streams. Every call must end with a status in its bound, no message
# lost, doubled or reordered; prints a line per case. Loopback only, about 25 s.

.PHONY: test-faults
TEST_TARGETS += test-faults

test-faults:
	cargo build -p rill-faults --bin faults
	$(CARGO_TARGET_DIR)/debug/faults
