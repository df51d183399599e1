# bench: `make demo` runs a small real sweep and writes a leaderboard, plots and a report;
# `make test` runs the test suite. Both install into .venv first when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BENCH  := $(VENV)/bin/bench
STAMP  := $(VENV)/.installed-stamp
export WANDB_MODE ?= disabled

.PHONY: help install test check demo lint clean

help:  ## show the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade-strategy only-if-needed -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install bench with its test dependencies

test: $(STAMP)  ## run the test suite (CPU, a few minutes; one worker per core, each on one thread)
	$(PY) -m pytest -n $(or $(JOBS),auto)

check: $(STAMP)  ## regression gate: the ci sweep vs bench/conf/check/ci_baseline.json (~1 min)
	$(BENCH) check ci

demo: $(STAMP)  ## small real sweep -> leaderboard, plots and report.html under runs/demo
	$(BENCH) demo

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check bench tests

clean:  ## remove the virtual environment and caches (runs/ is kept)
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
