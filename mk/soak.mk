# The soak (issue 16), `make soak`, not part of `make test`: minutes long, every part
# bounded. Three parts, each against rill-bench's echo-server (release) in a process of its
# own, so that what is measured is the server's memory alone:
#   rust    soak/src: SOAK_STREAMS concurrent streams of all four shapes over a handful of
#           connections for SOAK_SECONDS, with churn (streams end and start, some
#           cancelled, some past their deadline, connections closed and reopened); the
#           server's RSS, fds and threads sampled every second; fails if RSS grows after
#           the warm-up, if the server (on jemalloc) keeps memory once every connection is
#           closed, or on any status the call did not ask for.
#   python  soak/python/soak.py: SOAK_CALLS calls through the Python binding (release, in a
#           venv of its own: the shared one holds the tests' debug build).
#   node    soak/node/soak.js: SOAK_CALLS calls through the Node binding (release, in a
#           copy of the package under $(SOAK_OUT): bindings-node/native holds the tests'
#           debug addon).
# The bindings' parts count memory, tasks or handles, and fds before and after.
# SOAK_PARTS picks parts (`make soak SOAK_PARTS=rust SOAK_SECONDS=20` to try one quickly).

SOAK_SECONDS ?= 180
SOAK_STREAMS ?= 10000
SOAK_CONNECTIONS ?= 8
SOAK_CALLS ?= 1000000
SOAK_PARTS ?= rust python node
SOAK_OUT := $(CARGO_TARGET_DIR)/soak
SOAK_SERVER := $(CARGO_TARGET_DIR)/release/echo-server
SOAK_PY_VENV := $(SOAK_OUT)/venv
SOAK_NODE_PKG := $(SOAK_OUT)/node/rillrpc
# The Rust part's server runs on jemalloc (Debian's libjemalloc2), which gives freed pages
# back: what it holds after the run is then a leak, not what glibc's allocator keeps.
SOAK_JEMALLOC := /usr/lib/$(shell uname -m)-linux-gnu/libjemalloc.so.2

.PHONY: soak soak-build soak-python-install soak-node-install soak-jemalloc

soak-jemalloc:
	@test -e $(SOAK_JEMALLOC) || { \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq libjemalloc2; }

$(SOAK_PY_VENV)/bin/python:
	$(PYTHON) -m venv $(SOAK_PY_VENV) || { \
	  (apt-get update && apt-get install -y python3-venv) && $(PYTHON) -m venv $(SOAK_PY_VENV); }
	$(SOAK_PY_VENV)/bin/pip install --quiet --upgrade pip maturin

soak-python-install: $(SOAK_PY_VENV)/bin/python
	PATH="$(SOAK_PY_VENV)/bin:$$PATH" MATURIN_PEP517_ARGS="--profile release" \
	  $(SOAK_PY_VENV)/bin/pip install --quiet --no-build-isolation --force-reinstall --no-deps ./bindings-python

# The package's JavaScript as it is in the tree, and a release addon built beside it.
soak-node-install:
	rm -rf $(SOAK_NODE_PKG)
	mkdir -p $(SOAK_NODE_PKG)
	cp -r $(NODE_PKG)/package.json $(NODE_PKG)/index.js $(NODE_PKG)/thrift.js $(NODE_PKG)/lib $(SOAK_NODE_PKG)/
	RILLRPC_BUILD=release node $(NODE_PKG)/scripts/build.js --out $(SOAK_NODE_PKG)/native

soak-build: $(if $(filter python,$(SOAK_PARTS)),soak-python-install) \
            $(if $(filter node,$(SOAK_PARTS)),soak-node-install) \
            $(if $(filter rust,$(SOAK_PARTS)),soak-jemalloc)
	cargo build --release -p rill-bench --bin echo-server -p rill-soak --bin rill-soak

# Every part runs even when one before it failed; the summary table comes last, and the
# run fails if any part did. The open-file limit is raised for SOAK_CONNECTIONS far past
# the default (the server, a child, inherits it).
soak: soak-build
	@mkdir -p $(SOAK_OUT); rm -f $(SOAK_OUT)/summary.txt; failed=; \
	ulimit -n $$(ulimit -Hn) 2>/dev/null || true; \
	for p in $(SOAK_PARTS); do \
	  echo "=== soak $$p"; \
	  case $$p in \
	    rust) $(CARGO_TARGET_DIR)/release/rill-soak --server $(SOAK_SERVER) --preload $(SOAK_JEMALLOC) \
	            --seconds $(SOAK_SECONDS) --streams $(SOAK_STREAMS) \
	            --connections $(SOAK_CONNECTIONS) --summary $(SOAK_OUT)/summary.txt ;; \
	    python) $(SOAK_PY_VENV)/bin/python soak/python/soak.py --server $(SOAK_SERVER) \
	            --calls $(SOAK_CALLS) --summary $(SOAK_OUT)/summary.txt ;; \
	    node) node --expose-gc soak/node/soak.js --server $(SOAK_SERVER) \
	            --pkg $(SOAK_NODE_PKG) --calls $(SOAK_CALLS) --summary $(SOAK_OUT)/summary.txt ;; \
	    *) echo "soak: unknown part $$p"; false ;; \
	  esac || { failed="$$failed $$p"; echo "soak $$p: FAILED"; }; \
	done; \
	echo "=== soak summary"; cat $(SOAK_OUT)/summary.txt 2>/dev/null; \
	if [ -n "$$failed" ]; then echo "soak: FAILED:$$failed"; exit 1; fi; \
	echo "soak: every part passed ($(SOAK_PARTS))"
