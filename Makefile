# ibframe: every target works from a clean clone; `make install` builds .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test sim run bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

sim: install
	$(BIN)/python -m ibframe.sim

run: install
	$(BIN)/python -m ibframe.run config/ma_cross.yaml --duration 60s

bench: install
	$(BIN)/python -m ibframe.bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
