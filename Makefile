# Two entry points for a fresh machine: `make demo` and `make test`.
# `make package`: the Lambda artifact, dist/docsync-lambda.zip (deploy/package.py).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov (the template's security scanner) conflicts with our pins: it gets its own venv.
SCAN_VENV := .venv-scan
SCAN_STAMP := $(SCAN_VENV)/.installed

.PHONY: demo test lint bench env clean package lock scan

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,local]'
	touch $(STAMP)

$(SCAN_STAMP): deploy/scan-requirements.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet --upgrade pip
	$(SCAN_VENV)/bin/pip install --quiet -r deploy/scan-requirements.txt
	touch $(SCAN_STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/docsync demo

# Tests run in 4 pytest-xdist workers, each with its own moto server: most of a test's time is
# moto (in-process, one GIL) or a CLI subprocess, so 4 workers keep 2 cores busy.
TEST_WORKERS ?= 4
test: $(STAMP) $(SCAN_STAMP)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

# e.g. PACKAGE_ARGS="--python 3.11" or "--compiler /usr/bin/python3.12" (for the zip's bytecode)
PACKAGE_ARGS ?=
package: $(STAMP)
	$(BIN)/python deploy/package.py $(PACKAGE_ARGS)

lock: $(STAMP)
	$(BIN)/python deploy/package.py --lock

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy tests
	$(BIN)/mypy bench/*.py
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/read_path.py
	$(BIN)/python bench/write_path.py
	$(BIN)/python bench/listener.py
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/http_load.py
	$(BIN)/python bench/customer_query.py
	$(BIN)/python bench/l1.py

scan: $(STAMP) $(SCAN_STAMP)
	$(BIN)/cfn-lint deploy/template.yaml
	$(SCAN_VENV)/bin/checkov -f deploy/template.yaml --framework cloudformation --compact --quiet --skip-download

clean:
	rm -rf $(VENV) $(SCAN_VENV) dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
