# The two commands a new user needs:  `make serve`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install serve test lint typecheck pytest train-tiny eval benchmark clean

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

lint: install typecheck
	$(BIN)/ruff check onlstm models training service tests benchmarks
	$(BIN)/hadolint Dockerfile

# mypy over the package as it is installed (configuration: pyproject's [tool.mypy]). mypy cannot follow
# setuptools' editable finder (an import hook) and a mypy_path cannot rename a folder (models/ is
# onlstm.models), so the package is laid out here as symlinks: one per entry of onlstm/, made afresh each
# run (files added or removed there are followed), and models, training and service as whole folders (a new
# file in them is seen at once). mypy names each module by its path under build/typecheck, as Python would.
TYPECHECK_TREE := build/typecheck/onlstm
typecheck: install  ## the type checker over the package (also run by make lint)
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)
	for entry in onlstm/*; do \
	  case $$entry in */__pycache__) ;; *) ln -s ../../../$$entry $(TYPECHECK_TREE)/ ;; esac; done
	for folder in models training service; do ln -s ../../../$$folder $(TYPECHECK_TREE)/$$folder; done
	$(BIN)/mypy --python-executable $(BIN)/python $(TYPECHECK_TREE)

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
