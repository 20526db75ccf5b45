# hipaug: two commands do all set-up on a fresh machine.
#   make book   -> .venv (if missing or stale) + execute notebooks (PROFILE) + Jupyter Book HTML
#                  (LIMB_DIR=... PELVIC_DIR=...: on your radiographs; FRACATLAS=...: on the FracAtlas
#                  release, profile fracatlas; OUT=...: the HTML folder)
#   make test   -> .venv (if missing or stale) + unit tests + nbval + smoke-book checks
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hipaug-installed
PROFILE ?=
FRACATLAS ?=
LIMB_DIR ?=
PELVIC_DIR ?=
OUT ?=
EXECUTOR ?=
PYTEST_ARGS ?=
ARTIFACTS ?= artifacts
export HIPAUG_ARTIFACTS := $(abspath $(ARTIFACTS))

.PHONY: venv setup lint layout test browser test-fast test-slow book book-smoke nbval-refs bench contact-sheet clean help

help:
	@echo "make book [PROFILE=default|smoke|paper]   build the Jupyter Book into _build/html"
	@echo "make book LIMB_DIR=D PELVIC_DIR=D [OUT=D]  the book on your radiographs (_build/html-custom-<fingerprint>)"
	@echo "make book FRACATLAS=FracAtlas.zip          the book on the FracAtlas release (_build/html-fracatlas-<fingerprint>)"
	@echo "make book EXECUTOR=dask:2                 build the whole grids on a local Dask cluster (same results at equal threads)"
	@echo "make test                                 unit tests, nbval regression, smoke-book checks"
	@echo "make lint                                 import-linter contracts and ruff (part of make test)"
	@echo "make test-fast                            unit tests only"
	@echo "make test-slow                            slow regression tests only (AC-GAN digits conditioning)"
	@echo "make layout                               refresh the layout diagram in CONTRIBUTING.md"
	@echo "make nbval-refs                           regenerate tests/notebooks (smoke profile): only after a deliberate"
	@echo "                                          change of results; a new machine never needs it (make test passes on any CPU)"
	@echo "make bench                                benchmarks -> benchmarks/results/"

# The venv is rebuilt whenever pyproject.toml changes (the stamp stores its hash). pip would
# compile every installed module to bytecode one file at a time, half of the set-up time on 2 cores;
# compileall does it on all cores. Its status is ignored: a few packages ship files that are not
# Python 3, and bytecode only saves time.
$(STAMP): pyproject.toml
	@set -e; want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ -x $(PY) ] && [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$$want" ]; then touch $(STAMP); exit 0; fi; \
	echo "[hipaug] setting up $(VENV) with $(PYTHON) (pyproject.toml changed or no venv; pinned torch==2.14.1, torchvision==0.29.1)"; \
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV); \
	$(PY) -m pip install --quiet --upgrade pip 2>/dev/null || true; \
	$(PY) -m pip install --quiet --progress-bar off --no-compile -e '.[test]'; \
	$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true; \
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (hipaug)" >/dev/null; \
	echo "$$want" > $(STAMP)

venv: $(STAMP)

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900

# Everything: nbval regression runs of the smoke notebooks (tests/notebooks), also under a second kernel
# set, unit tests (including the slow AC-GAN conditioning check) and the smoke-book build + browser check,
# on both cores (pytest-xdist; --dist loadscope keeps a notebook's cells, and a module's fixtures, on one
# worker). The browser (apt-get, when missing and root) and the venv (pip) are set up side by side first.
test: setup lint
	HIPAUG_PROGRESS=0 $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadscope --no-loadscope-reorder $(NBVAL) $(PYTEST_ARGS) tests

setup:
	@$(MAKE) --no-print-directory -j2 browser venv

browser:
	@bash scripts/ensure_chromium.sh

# The architecture as contracts (pyproject.toml [tool.importlinter]) and no unused imports or names.
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check --no-cache hipaug tests benchmarks scripts notebooks/*.py

# Unit tests only (seconds to a minute): no notebooks, no book, no slow checks.
test-fast: $(STAMP)
	HIPAUG_PROGRESS=0 $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadscope -m "not slow and not book" tests

test-slow: $(STAMP)
	HIPAUG_PROGRESS=0 $(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadscope -m slow tests

book: $(STAMP)
	$(PY) -m hipaug.book $(if $(PROFILE),--profile "$(PROFILE)") $(if $(FRACATLAS),--fracatlas "$(FRACATLAS)") \
		$(if $(LIMB_DIR),--limb-dir "$(LIMB_DIR)") \
		$(if $(PELVIC_DIR),--pelvic-dir "$(PELVIC_DIR)") $(if $(OUT),--out "$(OUT)") \
		$(if $(EXECUTOR),--executor "$(EXECUTOR)")

book-smoke:
	$(MAKE) book PROFILE=smoke

# The layout diagram in CONTRIBUTING.md, from the import contracts and the module docstrings.
layout: $(STAMP)
	$(PY) -c "from pathlib import Path; from hipaug.book import layout; layout.refresh(Path('.'))"

nbval-refs: $(STAMP)
	$(PY) -m hipaug.book --profile smoke --nbval-refs tests/notebooks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

contact-sheet: $(STAMP)
	$(PY) scripts/contact_sheet.py

clean:
	rm -rf _build build artifacts
