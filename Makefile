# ibframe: every target works from a clean clone; `make install` builds .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test fuzz sim run bench sweep clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# three workers on two cores: most tests wait on sockets and simulated markets, not on the CPU
test: install
	$(BIN)/python -m pytest -q -n 3 --dist worksteal

# the fuzz tests at full size: 1,000,000 mutated frames into the client, 10,000 mutated configs, garbage
# connections into the simulator, 6,000 generated orders encoded both ways (the suite runs the same tests with fewer cases)
fuzz: install
	IBFRAME_FUZZ=full $(BIN)/python -m pytest -q -n 3 --dist worksteal tests/test_frame_fuzz.py tests/test_sim_fuzz.py tests/test_config_fuzz.py tests/test_order_encoding.py

sim: install
	$(BIN)/python -m ibframe.sim

run: install
	$(BIN)/python -m ibframe.run config/ma_cross.yaml --duration 60s

bench: install
	$(BIN)/python -m ibframe.bench

# a 20-point grid (fast 3-6 x slow 20-40 step 5) over the checked-in recording, one Dask task each, on this machine
sweep: install
	mkdir -p var
	$(BIN)/python -m ibframe.sweep config/ma_cross.yaml --param fast=3:6 --param slow=20:40:5 \
		--recordings 'recordings/*.jsonl.gz' --fills simulated --out var/sweep.parquet

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
