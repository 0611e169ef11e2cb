# The fault suite (interop/faults/, issue 16): a server process SIGKILLed and SIGSTOPped
# under a client holding a call of every shape, a client process killed and frozen under
# the server, a link delayed, down and cut (tc netem in a network namespace of its own where
# the kernel has it, SKIP otherwise; and a userspace fault proxy always), and a graceful
# shutdown under 1,000 streams; and calls through Debian's nginx as a gRPC proxy, whose
# keepalive_requests ends each connection with GOAWAY after 1,000 requests (nginx is
# installed here when missing, as root). Every call
# must end with a status in its bound, no message lost, doubled or reordered; prints a line
# per case. Loopback only, about 25 s.

.PHONY: test-faults faults-nginx
TEST_TARGETS += test-faults

faults-nginx:
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null || { \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) \
		  apt-get install -y -qq nginx; }

test-faults: faults-nginx
	cargo build -p rill-faults --bin faults
	$(CARGO_TARGET_DIR)/debug/faults
