# The two commands a new user needs:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install serve test lint pytest train-tiny eval benchmark clean

# torch is installed first, from PyTorch's CPU wheel index, so that pip never pulls the CUDA
# build (gigabytes of GPU libraries); the package's own requirement is a range this version
# satisfies. The one place to change it:
#   make serve TORCH_INDEX=https://download.pytorch.org/whl/cu126   # a CUDA build, to train on a GPU
#   make test TORCH_INDEX=                                            # pip's own index (or a local wheel)
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?= https://download.pytorch.org/whl/cpu

$(BIN)/onlstm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
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
