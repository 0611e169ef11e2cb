# Flakes (issue 16, tests/flakes/run.sh): every suite of `make test` (or FLAKE_SUITES) run
# FLAKE_RUNS times, two at once on this machine's cores, failures logged under
# $(CARGO_TARGET_DIR)/flakes. Not part of `make test`: 20 runs of every suite take hours.
FLAKE_RUNS ?= 20
FLAKE_SUITES ?= $(TEST_TARGETS)

.PHONY: flakes
flakes:
	tests/flakes/run.sh $(FLAKE_RUNS) $(FLAKE_SUITES)
