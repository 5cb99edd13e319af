# Two commands do all the set-up on a fresh machine:
#   make bench   benchmark the built-in backends on the built-in Telugu data and write a report
#   make test    run the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BENCH_OUT ?= reports/runs/bench
REPORT_OUT ?= reports/latest

.PHONY: bench test gate gate-baseline install lint clean

$(VENV)/.installed: pyproject.toml scripts/install-system-deps.sh
	./scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build from the local wheel, never another one pulled in by a dependency
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[all,dev]' torch==2.13.0
	touch $@

install: $(VENV)/.installed

# The main job: the built-in backends that have weights here (loopback = calibration, custom = our model) on the
# built-in Telugu question set (synthesised on first use), realtime pacing, DNSMOS, then the report.
# Add backends with BENCH_BACKENDS, e.g. "--backend cascade:asr=...,llm=...,tts=...,vocoder=...".
# The set must be the reference one (every voice, festival's included) so that two machines measure the same
# utterances: on a machine without a working festival, `run --strict-data` stops with what to install.
# BENCH_ALLOW_DEGRADED=1 measures the degraded set anyway (run.json and the report label it; gates say x).
BENCH_BACKENDS ?= --backend loopback --backend custom
BENCH_DATA_POLICY = $(if $(BENCH_ALLOW_DEGRADED),,--strict-data)
bench: install
	rm -rf $(BENCH_OUT)
	$(BIN)/s2s-bench run $(BENCH_BACKENDS) --data telugu-mini-qa --split test --limit 20 --pacing realtime \
	  $(BENCH_DATA_POLICY) --out $(BENCH_OUT)
	$(BIN)/s2s-bench score run $(BENCH_OUT) --metrics dnsmos
	$(BIN)/s2s-bench report $(BENCH_OUT) --out $(REPORT_OUT)
	@echo "report: $(REPORT_OUT)/report.html (and report.md)"

# The suites line: synthetic-clips are speech-like tones, which silero-vad does not hear as speech, so the turn-taking
# suite's endpointer adapter uses the energy VAD there.
test: install
	rm -rf reports/runs/ci-suites reports/runs/ci-suites-turns-*
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q suites --backend=loopback:delay_ms=150 --backend=loopback:fail=crash,every=3 \
	  --s2s-limit=6 --s2s-out=reports/runs/ci-suites --s2s-endpointer-vad=energy

# CI's latency gate, side by side (asv continuous): the built-in backends served from the previous commit of main
# (GATE_AGAINST empty: the merge base with main, or HEAD's first parent when HEAD is main; any git revision works)
# and from this tree, measured in one run on this machine; exit non-zero on a regression or when the sides cannot
# be compared. The committed absolute baseline is printed beside it as history, never deciding (docs/reports.md).
GATE_AGAINST ?=
GATE_N ?= 16
GATE_BASELINE ?= reports/baselines/ci-builtin.json
GATE_OUT ?= reports/runs/ci-gate
GATE_ARGS = suites/test_latency.py --backend=loopback:delay_ms=100 --backend=custom --s2s-data=telugu-mini-qa \
	  --s2s-split=test --s2s-limit=$(GATE_N) --s2s-pacing=realtime
gate: install
	rm -rf $(GATE_OUT)
	$(BIN)/python -m pytest -q $(GATE_ARGS) --s2s-out=$(GATE_OUT) --s2s-against$(if $(GATE_AGAINST),=$(GATE_AGAINST)) \
	  --s2s-compare=$(GATE_BASELINE) --s2s-compare-out=$(GATE_OUT)/verdicts.md

# The absolute baseline (history): this tree alone, as CI measures it, saved as a compact JSON.
gate-baseline: install
	rm -rf reports/runs/ci-gate-baseline
	$(BIN)/python -m pytest -q $(GATE_ARGS) --s2s-out=reports/runs/ci-gate-baseline
	$(BIN)/s2s-bench gate --save-baseline reports/runs/ci-gate-baseline --out $(GATE_BASELINE)

lint: install
	$(BIN)/ruff check harness backends custom_model suites tests benchmarks
	$(BIN)/ruff format --check harness backends custom_model suites tests benchmarks

clean:
	rm -rf $(VENV) reports/runs
