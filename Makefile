# The two commands a new user needs:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install serve test lint pytest train-tiny eval benchmark clean

# torch is pinned first so pip never pulls a multi-GB CUDA build; the package's own
# requirement is a range that this version satisfies.
$(BIN)/onlstm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/onlstm

serve: install  ## start the HTTP service on the bundled model: http://$(HOST):$(PORT)/
	$(BIN)/onlstm serve --host $(HOST) --port $(PORT)

test: install lint pytest  ## lint, then the whole test suite

lint: install
	$(BIN)/ruff check onlstm models training service tests benchmarks
	$(BIN)/hadolint Dockerfile

pytest: install
	$(BIN)/python -m pytest -q

train-tiny: install  ## a one-minute training run on the tiny preset
	$(BIN)/onlstm train --preset tiny --out runs/tiny

eval: install  ## the bundled model on the dev split, both modes, beside the baselines
	$(BIN)/onlstm eval --mode both

benchmark: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
