# covertreex developer commands. Only python3 (>= 3.11) and access to PyPI are needed:
# the first `make test` or `make bench` creates .venv and installs the package with its dev extras.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Numba keeps compiled kernels (functions with cache=True) here between runs.
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

# The quick benchmark with its PASS/FAIL check. Switch to the CLI once it exists:
#   BENCH_QUICK := $(PY) -m covertreex bench --preset quick --check
BENCH_QUICK := $(PY) benchmarks/presets.py --preset quick --check
BENCH_ALL   := $(PY) benchmarks/presets.py --preset gold-d3 --preset gold-d8 --preset euclid-32k --preset vecchia-d3

.PHONY: venv test bench bench-all clean distclean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(BENCH_QUICK)

bench-all: $(STAMP)
	$(BENCH_ALL)

# Caches and build outputs; keeps .venv (see distclean).
clean:
	rm -rf .numba_cache .pytest_cache .hypothesis .benchmarks ./build ./dist reports/out
	rm -rf *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
