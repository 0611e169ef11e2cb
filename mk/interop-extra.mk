# HTTP/2 conformance with h2spec against the rillrpc server (h2c), and gRPC's interop client
# written on the Python binding, run against grpc-go's interop server (h2c and TLS).
#   interop/h2spec/known-failures.txt lists the h2spec cases that fail, each with its reason;
#   the check fails on a new failure and on a listed case that passes (the list only shrinks).

TEST_TARGETS += test-h2spec test-interop-python
IX_OUT := $(CARGO_TARGET_DIR)/interop-extra
INTEROP_PY_GEN := $(IX_OUT)/gen
# The grpc.testing descriptors, from grpc-go's module (interop/grpc-testing, as interop/build.rs).
INTEROP_FDS := $(abspath $(IX_OUT))/grpc_testing.fds

.PHONY: test-h2spec test-interop-python interop-python-gen

test-h2spec: go-h2spec
	$(PYTHON) interop/h2spec/test_check.py
	cargo build -p rill-bench --bin echo-server
	$(PYTHON) interop/h2spec/run.py --h2spec $(H2SPEC) --server $(CARGO_TARGET_DIR)/debug/echo-server \
	  --report $(IX_OUT)/h2spec-report.xml --log $(IX_OUT)/h2spec.log

# The grpc.testing modules; the empty __init__.py files make this `grpc` package win over
# grpcio's on the client's sys.path (the client does not use grpcio).
interop-python-gen: python-venv | go-check
	rm -rf $(INTEROP_PY_GEN) && mkdir -p $(INTEROP_PY_GEN)
	cd interop/grpc-testing && $(GO) run . $(INTEROP_FDS)
	$(PY_BIN)/python -m grpc_tools.protoc --descriptor_set_in=$(INTEROP_FDS) \
	  --python_out=$(INTEROP_PY_GEN) grpc/testing/empty.proto grpc/testing/messages.proto \
	  grpc/testing/test.proto
	touch $(INTEROP_PY_GEN)/grpc/__init__.py $(INTEROP_PY_GEN)/grpc/testing/__init__.py

test-interop-python: python-install python-gen go-interop interop-python-gen
	$(PY_BIN)/python interop/python/run.py --python $(PY_BIN)/python --server $(GO_INTEROP_SERVER) \
	  --testdata $(GO_GRPC_TESTDATA) --gen $(INTEROP_PY_GEN) --logs $(IX_OUT)
