# make setup: system packages + .venv (idempotent); make demo; make test.
PYTHON_SYSTEM ?= /usr/bin/python3
VENV          := .venv
PY            := $(VENV)/bin/python
STAMP         := $(VENV)/.installed

.PHONY: setup system venv demo test test-fast bench clean

setup: system $(STAMP)

system:
	@bash scripts/setup-system.sh
	@bash scripts/install-speedscope.sh

# --system-site-packages: BCC comes from Debian (python3-bpfcc), not PyPI.
# compat editable mode: a plain path entry, no import hook at every start-up.
# compileall: start-up reads bytecode even where PYTHONDONTWRITEBYTECODE is set.
$(STAMP): pyproject.toml | system
	$(PYTHON_SYSTEM) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(PY) -m compileall -q profiler flamegraph
	touch $(STAMP)

demo: setup
	@$(PY) -m profiler.cli.demo

test: setup
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -ra -m 'not root and not browser and not slow'

bench: setup
	$(PY) bench/render.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
