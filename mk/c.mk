# The C ABI (ffi-c/): librillrpc.so / librillrpc.a, include/rillrpc.h, rillrpc.pc, and its
# tests in C (under valgrind). `make c-lib` installs the library into $(C_PREFIX):
#   cc app.c $$(PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig pkg-config --cflags --libs rillrpc)
C_PROFILE ?= debug
C_PREFIX ?= $(CARGO_TARGET_DIR)/c-$(C_PROFILE)
C_CARGO_FLAGS := $(if $(filter release,$(C_PROFILE)),--release,)
C_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

TEST_TARGETS += test-c
.PHONY: c-lib test-c c-valgrind

c-lib:
	cargo build -p rillrpc-ffi $(C_CARGO_FLAGS)
	mkdir -p $(C_PREFIX)/lib/pkgconfig $(C_PREFIX)/include
	cp $(CARGO_TARGET_DIR)/$(C_PROFILE)/librillrpc_c.so $(C_PREFIX)/lib/librillrpc.so
	cp $(CARGO_TARGET_DIR)/$(C_PROFILE)/librillrpc_c.a $(C_PREFIX)/lib/librillrpc.a
	cp include/rillrpc.h $(C_PREFIX)/include/rillrpc.h
	sed -e 's|@PREFIX@|$(C_PREFIX)|' -e 's|@VERSION@|$(C_VERSION)|' ffi-c/rillrpc.pc.in \
		> $(C_PREFIX)/lib/pkgconfig/rillrpc.pc

c-valgrind:
	@{ command -v valgrind && command -v pkg-config; } >/dev/null || { \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq valgrind pkg-config; }

# Every C test runs under valgrind (zero errors, zero definite leaks); the header must be
# what cbindgen makes of the source; the examples build with pkg-config, shared and static.
test-c: c-lib c-valgrind
	RILL_VALGRIND=1 cargo test -p rillrpc-ffi -- --test-threads=2
	export PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig && \
	cc -Wall -Werror examples/c/server.c -o $(C_PREFIX)/example-server \
		$$(pkg-config --cflags --libs rillrpc) -Wl,-rpath,$(C_PREFIX)/lib && \
	cc -Wall -Werror -Iexamples/c -Iffi-c/tests/c ffi-c/tests/c/misuse_test.c \
		-o $(C_PREFIX)/misuse-static $$(pkg-config --cflags rillrpc) \
		$(C_PREFIX)/lib/librillrpc.a $$(pkg-config --static --libs-only-l rillrpc | sed 's/-lrillrpc//') && \
	$(C_PREFIX)/misuse-static
