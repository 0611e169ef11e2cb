# Fuzzing (fuzz/, fuzz/README.md): a cargo-fuzz crate with one libFuzzer target per parser
# of a peer's bytes (rillrpc::fuzzing, the core's `fuzzing` feature), and c_abi, sequences of
# calls to the C ABI. `make fuzz` runs each target for FUZZ_SECONDS; `make test-fuzz`, part of
# `make test`, for FUZZ_TEST_SECONDS.
# Each run starts from the committed seeds (fuzz/corpus/<target>) and reproducers
# (fuzz/regressions/<target>); what the fuzzer finds goes to $(FUZZ_WORK)/corpus/<target>,
# kept between runs, never into the tree. A crash (or a leak, a timeout, an out-of-memory)
# fails the run and names its reproducer in fuzz/artifacts/<target>/.
# Needs a nightly toolchain (installed with rustup when missing) and cargo-fuzz, pinned,
# installed once into $(FUZZ_TOOLS). The build (nightly, ASan, debug assertions) has a target
# dir of its own so that it leaves the main stable build alone.
FUZZ_DIR := $(CURDIR)/fuzz
FUZZ_TARGETS ?= envelope grpc_headers grpc_web connect ttheader server client c_abi
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 10
FUZZ_TOOLCHAIN ?= nightly
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TOOLS := $(CARGO_TARGET_DIR)/fuzz-tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)
FUZZ_WORK := $(CARGO_TARGET_DIR)/fuzz
# What `cargo fuzz build` and `cargo fuzz run` share, so that a run reuses the build.
FUZZ_CARGO = PATH="$(FUZZ_TOOLS)/bin:$$PATH" cargo +$(FUZZ_TOOLCHAIN) fuzz
FUZZ_BUILD_FLAGS = --fuzz-dir $(FUZZ_DIR) --target-dir $(FUZZ_WORK)/target --debug-assertions

TEST_TARGETS += test-fuzz
.PHONY: fuzz test-fuzz fuzz-build fuzz-nightly

fuzz-nightly:
	@rustup toolchain list | grep -q '^$(FUZZ_TOOLCHAIN)-' || \
	  rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal --no-self-update

# Built by stable cargo in a temporary dir (not the main target dir), once per version.
$(FUZZ_TOOLS)/bin/cargo-fuzz:
	env -u CARGO_TARGET_DIR cargo install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked \
	  --root $(FUZZ_TOOLS)

fuzz-build: fuzz-nightly $(FUZZ_TOOLS)/bin/cargo-fuzz
	$(FUZZ_CARGO) build $(FUZZ_BUILD_FLAGS)

# libFuzzer flags of one target beyond the common ones: FUZZ_FLAGS_<target>. c_abi's coverage
# depends on the timing of the library's threads, so with hit counts most of its inputs look
# new; edges alone reach more code, with a smaller corpus, at three times the rate.
FUZZ_FLAGS_c_abi := -use_counters=0

# $(call fuzz-run,SECONDS): every target for SECONDS, each logged to $(FUZZ_WORK)/<target>.log;
# prints each one's final stats, and for one that fails, its error, stack and reproducer.
define fuzz-run
	@$(foreach t,$(FUZZ_TARGETS),FUZZ_FLAGS_$(t)='$(FUZZ_FLAGS_$(t))') failed=; \
	for t in $(FUZZ_TARGETS); do \
	  work=$(FUZZ_WORK)/corpus/$$t; log=$(FUZZ_WORK)/$$t.log; art=$(FUZZ_DIR)/artifacts/$$t; \
	  eval "extra=\$$FUZZ_FLAGS_$$t"; \
	  mkdir -p $$work $$art; \
	  seeds=$(FUZZ_DIR)/corpus/$$t; \
	  if [ -d $(FUZZ_DIR)/regressions/$$t ]; then seeds="$$seeds $(FUZZ_DIR)/regressions/$$t"; fi; \
	  echo "fuzz $$t: $(1) s (log: $$log)"; \
	  touch $$log.start; \
	  if $(FUZZ_CARGO) run $(FUZZ_BUILD_FLAGS) $$t $$work $$seeds -- \
	      -max_total_time=$(1) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $$extra \
	      >$$log 2>&1; then \
	    grep -E '^#[0-9]+[[:space:]]+DONE' $$log | tail -1; \
	    grep -E '^stat::number_of_executed_units' $$log; \
	  else \
	    failed="$$failed $$t"; \
	    echo "fuzz $$t: FAILED"; \
	    { grep -n -m1 -E 'panicked at|ERROR: |==[0-9]+==' $$log >/dev/null && \
	      sed -n "$$(grep -n -m1 -E 'panicked at|ERROR: |==[0-9]+==' $$log | cut -d: -f1),\$$p" $$log; } \
	      || tail -n 60 $$log; \
	    for f in $$(find $$art -type f -newer $$log.start); do \
	      echo "fuzz $$t: reproducer $$f"; \
	      echo "  replay: PATH=$(FUZZ_TOOLS)/bin:\$$PATH cargo +$(FUZZ_TOOLCHAIN) fuzz run $(FUZZ_BUILD_FLAGS) $$t $$f"; \
	      echo "  hex: $$(od -An -v -tx1 $$f | tr -d ' \n' | head -c 2000)"; \
	    done; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then \
	  echo "fuzz: FAILED:$$failed; a reproducer becomes a regression test named after it (fuzz/README.md)"; \
	  exit 1; fi; \
	echo "fuzz: $(FUZZ_TARGETS): no crash in $(1) s each"
endef

fuzz: fuzz-build
	$(call fuzz-run,$(FUZZ_SECONDS))

test-fuzz: fuzz-build
	$(call fuzz-run,$(FUZZ_TEST_SECONDS))
