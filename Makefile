# Two commands do all the set-up on a fresh machine:
#   make bench   benchmark the built-in backends on the built-in Telugu data and write a report
#   make test    run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BENCH_OUT ?= reports/runs/bench
REPORT_OUT ?= reports/latest

.PHONY: bench test install lint clean

$(VENV)/.installed: pyproject.toml scripts/install-system-deps.sh
	./scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build from the local wheel, never another one pulled in by a dependency
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,dev]' torch==2.13.0
	touch $@

install: $(VENV)/.installed

bench: install
	rm -rf $(BENCH_OUT)
	$(BIN)/s2s-bench run --backend loopback:delay_ms=150 --backend loopback --data synthetic-clips --limit 12 \
	  --pacing realtime --out $(BENCH_OUT)

test: install
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q suites --backend=loopback:delay_ms=150 --backend=loopback:fail=crash,every=3 \
	  --s2s-limit=6 --s2s-out=reports/runs/ci-suites

lint: install
	$(BIN)/ruff check harness backends custom_model suites tests
	$(BIN)/ruff format --check harness backends custom_model suites tests

clean:
	rm -rf $(VENV) reports/runs
