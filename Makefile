# The README's two commands: `make demo` and `make test`. Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# Main job on the embedded sample: preprocess it into a store, print the store, point at the QC report.
demo: $(STAMP)
	rm -rf out/demo-store
	$(BIN)/neurofm preprocess --dataset eegmat --root data/sample/eegmat --pipeline eeg-200hz --out out/demo-store --n-jobs 2
	$(BIN)/neurofm info out/demo-store
	@echo "QC report: out/demo-store/qc/report.html"

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/ruff check neurofm tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench/preprocess.py --out results/bench-preprocess.json
