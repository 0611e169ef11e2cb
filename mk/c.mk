# The C ABI (ffi-c/): librillrpc.so / librillrpc.a, include/rillrpc.h, rillrpc.pc, and its
# tests in C (under valgrind). `make c-lib` installs the library into $(C_PREFIX):
#   cc app.c $$(PKG_CONFIG_PATH=$(C_PREFIX)/lib/pkgconfig pkg-config --cflags --libs rillrpc)
# `make install PREFIX=/usr/local` installs an optimized build there (DESTDIR honoured).
C_PROFILE ?= debug
C_PREFIX ?= $(CARGO_TARGET_DIR)/c-$(C_PROFILE)
# The debug library selects rill-workspace-hack too: its dependencies then have the features the
# other builds of `make test` use (workspace-hack/Cargo.toml), and it is the library that
# `cargo test -p rillrpc-ffi` builds and its C tests load, built once. A release library (`make
# install`, the one shipped; C_PROFILE=release, which the C bench measures) is built alone, with
# the features it ships with.
C_CARGO_FLAGS := $(if $(filter release,$(C_PROFILE)),--release,-p rill-workspace-hack)
C_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

PREFIX ?= /usr/local

TEST_TARGETS += test-c
.PHONY: c-lib test-c c-valgrind install

# Copies a build's library, header and pkg-config files (rillrpc: shared; rillrpc-static:
# the archive) into a prefix: $(call c-install,PROFILE,PREFIX,DEST). Every file is written
# under a name of this shell's own and renamed into place, never rewritten in place: a
# program running from the prefix (a matrix server, a test of another suite) would die of
# SIGBUS, and two suites installing at once (make flakes runs two side by side) took each
# other's temporary file (test-sanitize failed on "cannot stat librillrpc.so.new").
define c-install
	mkdir -p $(3)$(2)/lib/pkgconfig $(3)$(2)/include
	set -e; put() { cp "$$1" "$$2.new.$$$$"; mv -f "$$2.new.$$$$" "$$2"; }; \
	put $(CARGO_TARGET_DIR)/$(1)/librillrpc_c.so $(3)$(2)/lib/librillrpc.so; \
	put $(CARGO_TARGET_DIR)/$(1)/librillrpc_c.a $(3)$(2)/lib/librillrpc.a; \
	put include/rillrpc.h $(3)$(2)/include/rillrpc.h; \
	for pc in rillrpc rillrpc-static; do \
	  sed -e 's|@PREFIX@|$(2)|' -e 's|@VERSION@|$(C_VERSION)|' ffi-c/$$pc.pc.in \
	    > $(3)$(2)/lib/pkgconfig/$$pc.pc.new.$$$$; \
	  mv -f $(3)$(2)/lib/pkgconfig/$$pc.pc.new.$$$$ $(3)$(2)/lib/pkgconfig/$$pc.pc; done
endef

c-lib:
	cargo build -p rillrpc-ffi $(C_CARGO_FLAGS)
	$(call c-install,$(C_PROFILE),$(C_PREFIX),)

install:
	cargo build -p rillrpc-ffi --release
	$(call c-install,release,$(PREFIX),$(DESTDIR))

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
