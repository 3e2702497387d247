# Two commands set up a fresh machine: `make demo` runs the main job, `make test` runs the tests.
# Slow set-up (uv's wheel cache, the reference server's venv) is cached outside the work tree.

VENV       := .venv
PYTHON     := $(VENV)/bin/python
CACHE_DIR  ?= $(HOME)/.cache/modelhost
export CACHE_DIR

.PHONY: setup demo test lint unit bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh $(VENV)
	touch $@

demo: setup
	$(PYTHON) examples/demo/run_demo.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Installs and starts what the tests talk to (PostgreSQL from Debian's packages, the v1 reference
# server in its own venv), then runs the whole suite.
test: setup
	scripts/test.sh

unit: setup
	$(VENV)/bin/pytest tests/unit -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
