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

# Main job on the embedded sample: preprocess → tokenize with the shipped pretrained tokenizer → decoder beside a
# classical baseline → connectome → out/demo/index.html linking every report (scripts/demo/run.py).
demo: $(STAMP)
	rm -rf out/demo
	$(BIN)/python scripts/demo/run.py --out out/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/ruff check neurofm tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench/preprocess.py --out results/bench-preprocess.json
