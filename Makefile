# covertreex developer commands. Only python3 (>= 3.11) and access to PyPI are needed:
# the first `make test` or `make bench` creates .venv and installs the package with its dev extras,
# at the exact versions of constraints.txt (pyproject.toml only states ranges).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
ASV    := $(VENV)/bin/asv
STAMP  := $(VENV)/.installed
CONSTRAINTS := constraints.txt

# Numba keeps compiled kernels (functions with cache=True) here between runs. Numba checks only
# a kernel's own file for changes, not the files of kernels it calls, so the folder is keyed on
# a hash of all package sources (the index and the harness, which has kernels of its own): any
# edit starts a fresh cache instead of running stale code.
SOURCE_HASH := $(shell cat $$(find covertreex covertreex_bench -name '*.py' | sort) | cksum | cut -d' ' -f1)
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache/$(SOURCE_HASH)

# The quick benchmark with its recall check and PASS/FAIL verdicts against the gate thresholds.
BENCH_QUICK := $(PY) -m covertreex_bench bench --preset quick --check
# The benchmark box's presets: one process each, figures and telemetry under out/bench/.
BENCH_ALL_PRESETS := gold-d3 gold-d8 euclid-32k vecchia-d3

.PHONY: venv test lint bench bench-all asv profile gate calibrate dist clean distclean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -c $(CONSTRAINTS) --upgrade pip
	$(PY) -m pip install -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

# The import layers of [tool.importlinter] in pyproject.toml (the index never imports the harness).
# --no-cache: grimp's cache is keyed on each file's own mtime, so a package that gains an
# __init__.py could keep stale resolved imports; the check takes under a second anyway.
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache

# The import layers, the whole suite (tests/test_packaging.py builds the wheel and installs it
# alone in a fresh virtualenv), then the quick performance gate (tests/perf skips itself unless
# named) and the asv suites' import check.
test: $(STAMP) lint
	$(PY) -m pytest -q
	@mkdir -p out/gate
	$(PY) -m pytest -q tests/perf -p no:cacheprovider --benchmark-json=out/gate/pytest-benchmark.json
	$(ASV) check --python=same

# Ends by building the HTML report (reports/out/index.html) and printing its path; the report
# is built even when a verdict fails, and the bench's exit status is kept.
REPORT := $(PY) -m covertreex_bench report --out reports/out

bench: $(STAMP)
	@mkdir -p out/bench
	@status=0; $(BENCH_QUICK) --json out/bench/quick.json --log out/bench/quick.jsonl || status=$$?; \
	$(REPORT) || status=$$?; exit $$status

# The asv suites on this checkout (quick profile), recorded under HEAD; see docs/asv.md.
asv: $(STAMP)
	test -f $$HOME/.asv-machine.json || $(ASV) machine --yes
	$(ASV) run --python=same --set-commit-hash $$(git rev-parse HEAD) --quick
	$(ASV) publish

profile: $(STAMP)
	$(PY) -m covertreex_bench profile --preset quick

bench-all: $(STAMP)
	@mkdir -p out/bench
	@status=0; for p in $(BENCH_ALL_PRESETS); do \
	  echo "$(PY) -m covertreex_bench bench --preset $$p --check --json out/bench/$$p.json --log out/bench/$$p.jsonl"; \
	  $(PY) -m covertreex_bench bench --preset $$p --check --json out/bench/$$p.json --log out/bench/$$p.jsonl || status=1; \
	done; exit $$status

# Per-PR performance gate (perf/compare.py, perf/README.md): this checkout against BASE (default:
# the merge base with main, or HEAD~1 on main itself), measured interleaved in one job; fails when
# a figure is significantly slower by more than [compare].min_effect. Each side's samples are
# also written as pytest-benchmark JSON under out/gate/. An unknown BASE exits 2 at once.
gate: $(STAMP)
	$(PY) perf/compare.py $(if $(BASE),--base '$(BASE)')

# This machine's absolute limits (covertreex_bench/calibrate.py): writes
# ~/.covertreex/machines/<machine>.toml, read by `covertreex bench --check` and tests/perf.
calibrate: $(STAMP)
	$(PY) -m covertreex_bench calibrate

# The sdist and the wheel (index and harness in one distribution; the harness's dependencies
# are the [bench] extra) into dist/.
dist: $(STAMP)
	$(PY) -m build --outdir dist .

# Caches and build outputs; keeps .venv (see distclean).
clean:
	rm -rf .numba_cache .pytest_cache .hypothesis .benchmarks .import_linter_cache ./build ./dist reports/out
	rm -rf *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
