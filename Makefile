# JiveX-Py: `make run` starts the workstation, `make test` runs every test.
# Both set up what they need first: the Python packages in .venv and the
# Debian packages of installer/install-system-deps.sh.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run server test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	installer/install-system-deps.sh run
	$(BIN)/jivex gui $(ARGS)

server: $(STAMP)
	$(BIN)/jivex server $(ARGS)

test: $(STAMP)
	installer/install-system-deps.sh test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	installer/install-system-deps.sh bench
	$(BIN)/python benchmarks/bench_storage_scp.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
