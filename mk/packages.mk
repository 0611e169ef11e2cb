# The packages as a user installs them (tests/packages/run.py): the README's install lines,
# run in empty projects outside the repository (the npm tarballs, the Python sdist and abi3
# wheel, the .crate, `make install`), each ending with that language's example client
# against its example server. Builds share $(CARGO_TARGET_DIR)/packages/cargo.
# PACKAGES_ARGS="--only node --keep" runs one language and keeps its projects.

TEST_TARGETS += test-packages
.PHONY: test-packages

# python3-venv and pkg-config, which a fresh machine may lack: the rules that install them.
test-packages: python-venv c-valgrind
	$(PYTHON) tests/packages/run.py --target-dir $(CARGO_TARGET_DIR) $(PACKAGES_ARGS)
