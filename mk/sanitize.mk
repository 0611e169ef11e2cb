# Sanitizers (issue 16). `make test-sanitize`, part of `make test`, runs two parts and prints
# which ran:
#   sanitize-asan: the C test programs (every ffi-c/tests/*.rs that uses tests/support) built
#     with clang's AddressSanitizer and run with LeakSanitizer's check at exit
#     (RILL_SANITIZE=address, see ffi-c/tests/support/mod.rs), instead of valgrind; then
#     misuse_test.c linked statically against librillrpc.a, as test-c does without ASan.
#     The Rust library is not instrumented, but ASan replaces malloc and free for the whole
#     process, so heap misuse across the boundary is caught all the same.
#   sanitize-miri: the handle registry's tests (ffi-c/src/registry.rs) under Miri, compiled
#     alone by ffi-c/tests/support/miri (under Miri the whole crate's dependencies, tokio,
#     h2, rustls, take minutes to build and the registry uses none of them): once, then the
#     threaded ones (named lookups_*) for each of SANITIZE_MIRI_SEEDS, each seed a
#     different interleaving of the threads, the same ones every run.
# Installs what it needs: Debian's clang (and pkg-config) when missing, and Miri on the
# nightly toolchain that `fuzz-nightly` (mk/fuzz.mk) installs.
SANITIZE_MIRI_SEEDS ?= 0..32
SANITIZE_C_TESTS := $(patsubst ffi-c/tests/%.rs,%,$(shell grep -l '^mod support' ffi-c/tests/*.rs))
# What support/mod.rs gives every C test program it runs: a report fails with 99.
SANITIZE_ASAN_OPTIONS := detect_leaks=1:halt_on_error=1:exitcode=99:detect_stack_use_after_return=1:fast_unwind_on_malloc=0
SANITIZE_MIRI_DIR := $(CURDIR)/ffi-c/tests/support/miri

TEST_TARGETS += test-sanitize
.PHONY: test-sanitize sanitize-asan sanitize-miri sanitize-clang sanitize-miri-install

sanitize-clang:
	@{ command -v clang && command -v pkg-config; } >/dev/null || { \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq clang pkg-config; }

sanitize-asan: c-lib sanitize-clang
	RILL_SANITIZE=address cargo test -p rillrpc-ffi $(addprefix --test ,$(SANITIZE_C_TESTS)) \
		-- --test-threads=2
	export PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig && \
	clang -fsanitize=address -fno-omit-frame-pointer -g -Wall -Werror -Iexamples/c -Iffi-c/tests/c \
		ffi-c/tests/c/misuse_test.c -o $(C_PREFIX)/misuse-static-asan $$(pkg-config --cflags rillrpc) \
		$(C_PREFIX)/lib/librillrpc.a $$(pkg-config --static --libs-only-l rillrpc | sed 's/-lrillrpc//') && \
	ASAN_OPTIONS=$(SANITIZE_ASAN_OPTIONS) $(C_PREFIX)/misuse-static-asan

sanitize-miri-install: fuzz-nightly
	@have=$$(rustup component list --toolchain $(FUZZ_TOOLCHAIN) --installed); \
	  { grep -q '^miri' <<<"$$have" && grep -q '^rust-src' <<<"$$have"; } || \
	  rustup component add miri rust-src --toolchain $(FUZZ_TOOLCHAIN)

sanitize-miri: sanitize-miri-install
	cd $(SANITIZE_MIRI_DIR) && cargo +$(FUZZ_TOOLCHAIN) miri test -- --skip lookups
	cd $(SANITIZE_MIRI_DIR) && MIRIFLAGS="-Zmiri-many-seeds=$(SANITIZE_MIRI_SEEDS)" \
		cargo +$(FUZZ_TOOLCHAIN) miri test -- --quiet lookups

test-sanitize: sanitize-asan sanitize-miri
	@echo "test-sanitize: ASan+LSan ran the C programs of $(SANITIZE_C_TESTS) (c_coalesce's" \
	  "measurements skipped: test-c runs them natively) and misuse_test linked statically; Miri ran" \
	  "the handle registry's tests, the threaded ones with seeds $(SANITIZE_MIRI_SEEDS)"
