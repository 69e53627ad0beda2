# Set-up, tests and notebook runs; needs only Python >= 3.11 (as python3) and make.
#
#   make reproduce   create .venv if missing, install, run every notebooks/NN_*.ipynb at the
#                    laptop profile, in place (PROFILE=smoke|laptop|paper: other profiles write
#                    notebooks/<profile>/ and figures/<profile>/; NOTEBOOKS="00_quickstart ...");
#                    notebooks and training runs side by side, JOBS at once (default: the
#                    CPUs), one thread each, so the outputs do not depend on JOBS
#   make test        create .venv if missing, install, run pytest on tests/, then every notebook
#                    at the smoke profile under nbval (cells marked NBVAL_CHECK_OUTPUT compared),
#                    then the GPU check's code on the CPU (benchmarks/gpu_check.py --device cpu
#                    --quick; on a GPU machine run it without options), then
#                    `make test-install`'s check of the package as a user installs it
#   make test-install  build a wheel from a copy of the sources, install it (not editable) into
#                    a fresh virtual environment outside the checkout and run
#                    tools/installed_smoke.py there from an empty folder: synflow imported from
#                    that environment, default results/figures outside the package, a model
#                    pruned, saved and loaded, `python -m synflow status` for every training
#                    notebook at every profile (tools/test_install.sh; about a minute)
#   make test-cluster  create .venv if missing, install, bring up a private single-node Slurm
#                    (tools/slurm/with_slurm.sh: as root; installs slurm-wlm and munge with
#                    apt-get when missing), run tests/cluster (a sweep as a Slurm job array),
#                    stop the daemons. Skipped with the reason when Slurm cannot be started,
#                    except under $CI, where that fails.
#   make docs        build the documentation site into site/ (mkdocs, offline: README as the
#                    home page, docs/, every executed notebook with its outputs, the figures)
#   make claims      regenerate README.md's claims table and docs/results.md from the
#                    notebooks' claims files (tools/paper_claims.py; a test fails when stale)
#   make lint        ruff on lib, tests and tools
#
# Every path comes from this file's location, not the current directory. VENV=/some/path
# uses another virtual environment (created there if missing).

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PYTHON ?= python3
VENV ?= $(ROOT)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synflow-installed
PROFILE ?= laptop
NOTEBOOKS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.PHONY: install test test-install test-cluster reproduce lint docs claims

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "synflow needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0] + "; run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv "$(VENV)"

# reinstalled only when pyproject.toml changes (or the venv is new)
$(STAMP): $(ROOT)/pyproject.toml | $(BIN)/python
	"$(BIN)/python" -m pip install --progress-bar off -e "$(ROOT)[dev]"
	touch "$@"

reproduce: $(STAMP)
	"$(BIN)/python" "$(ROOT)/tools/run_notebooks.py" --profile "$(PROFILE)" --jobs "$(JOBS)" $(NOTEBOOKS)

# Tests write figures and results to a temporary folder, never into the repository.
test: $(STAMP)
	@tmp=$$(mktemp -d)
	trap 'rm -rf "$$tmp"' EXIT
	export SYNFLOW_FIGURES="$$tmp/figures" SYNFLOW_RESULTS="$$tmp/results"
	echo "== unit tests: pytest tests/"
	unit=0
	"$(BIN)/python" -m pytest "$(ROOT)/tests" || unit=$$?
	echo "== notebooks at the smoke profile: nbval"
	notebooks=0
	"$(BIN)/python" "$(ROOT)/tools/run_notebooks.py" --profile smoke --prepare-only \
		--output-dir "$$tmp/notebooks" $(NOTEBOOKS) || notebooks=$$?
	if [ $$notebooks -eq 0 ]; then
		"$(BIN)/python" -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider \
			--rootdir "$$tmp/notebooks" "$$tmp/notebooks" || notebooks=$$?
	fi
	echo "== the GPU check's code on the CPU: benchmarks/gpu_check.py --device cpu --quick"
	gpu=0
	"$(BIN)/python" "$(ROOT)/benchmarks/gpu_check.py" --device cpu --quick \
		--output "$$tmp/gpu_check.json" || gpu=$$?
	echo "== installed package: a wheel in a fresh environment (tools/test_install.sh)"
	installed=0
	"$(ROOT)/tools/test_install.sh" "$(BIN)/python" || installed=$$?
	verdict() { if [ "$$1" -eq 0 ]; then echo passed; else echo "FAILED (exit $$1)"; fi; }
	echo "== summary: unit tests $$(verdict $$unit); notebooks (smoke, nbval) $$(verdict $$notebooks);" \
		"gpu check (cpu, quick) $$(verdict $$gpu); installed package (wheel, fresh environment) $$(verdict $$installed)"
	[ $$unit -eq 0 ] && [ $$notebooks -eq 0 ] && [ $$gpu -eq 0 ] && [ $$installed -eq 0 ]

# The package as a user gets it (also the last step of `make test`): tools/test_install.sh
# builds a wheel from a copy of the sources, installs it into a fresh virtual environment in
# a temporary folder (reusing this environment's dependencies through a .pth path line, so
# torch is not installed again) and runs tools/installed_smoke.py from an empty folder.
test-install: $(STAMP)
	@"$(ROOT)/tools/test_install.sh" "$(BIN)/python"

# Not part of `make test`: it needs root and a few minutes, and under $CI it must fail
# (not skip) without Slurm. Results and submitit logs go to pytest's temporary folders.
test-cluster: $(STAMP)
	@tmp=$$(mktemp -d)
	trap 'rm -rf "$$tmp"' EXIT
	export SYNFLOW_FIGURES="$$tmp/figures" SYNFLOW_RESULTS="$$tmp/results"
	echo "== cluster test: tests/cluster on a single-node Slurm"
	"$(ROOT)/tools/slurm/with_slurm.sh" "$(BIN)/python" -m pytest -p no:cacheprovider -rs \
		--basetemp "$$tmp/pytest" "$(ROOT)/tests/cluster"

# `make test` builds the site too (tests/test_docs_site.py), into a temporary folder.
docs: $(STAMP)
	@NO_MKDOCS_2_WARNING=1 "$(BIN)/python" -m mkdocs build --strict -f "$(ROOT)/mkdocs.yml" \
		-d "$(ROOT)/site"
	echo "== the site: $(ROOT)/site/index.html (search works when served: python -m http.server -d site)"

claims: $(STAMP)
	"$(BIN)/python" "$(ROOT)/tools/paper_claims.py"

lint: $(STAMP)
	"$(BIN)/ruff" check "$(ROOT)/lib" "$(ROOT)/tests" "$(ROOT)/tools" "$(ROOT)/benchmarks"
