# Two commands set up a fresh machine: `make demo` and `make test`.
PY ?= python3
# Test processes: compiling the tiny models dominates the suite and is single-threaded.
TEST_WORKERS ?= 2
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo clean-demo libtpu

# libtpu (for `clqa aot`: compiling for TPU topologies on this CPU) is kept out of the venv's
# dependencies: it is large and only the ahead-of-time check and its test use it.
LIBTPU_VERSION := 0.0.42.1
LIBTPU_DIR := .libtpu
LIBTPU_STAMP := $(LIBTPU_DIR)/.installed-$(LIBTPU_VERSION)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP) $(LIBTPU_STAMP)

$(LIBTPU_STAMP): | $(STAMP)
	rm -rf $(LIBTPU_DIR)
	$(BIN)/pip install -q --no-deps --target $(LIBTPU_DIR) libtpu==$(LIBTPU_VERSION)
	touch $(LIBTPU_STAMP)

libtpu: $(LIBTPU_STAMP)

test: $(STAMP) $(LIBTPU_STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20 tests

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=3 $(BIN)/clqa demo --out demo_out
