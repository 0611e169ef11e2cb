# A real browser (tests/browser/): a page using @connectrpc/connect-web, in headless Chromium
# driven by playwright-core, calls rill-bench's echo-server (debug) from another origin over
# the Connect and gRPC-Web transports, and checks unary, server streaming, an error status,
# metadata and the CORS preflight; a server without --cors must be blocked. Chromium is
# Debian's package (installed here when `chromium` is not on PATH: we run as root); the npm
# packages are pinned by tests/browser/package-lock.json (npm ci, again when it changes);
# the echo types are generated into tests/browser/build/ by run.mjs (buf + protoc-gen-es).

TEST_TARGETS += test-browser
BROWSER_DIR := $(CURDIR)/tests/browser

.PHONY: test-browser browser-chromium

browser-chromium:
	@command -v chromium >/dev/null || { apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	@command -v chromium >/dev/null || { echo "test-browser: no chromium after apt-get" >&2; exit 1; }

$(BROWSER_DIR)/node_modules/.installed: $(BROWSER_DIR)/package-lock.json $(BROWSER_DIR)/package.json
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund
	touch $@

test-browser: browser-chromium $(BROWSER_DIR)/node_modules/.installed
	cargo build -p rill-bench --bin echo-server
	cd $(BROWSER_DIR) && node run.mjs --echo-server $(CARGO_TARGET_DIR)/debug/echo-server \
	  --idl $(SHARED)/idl --chromium "$$(command -v chromium)"
