# hemsync: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
DB ?= var/hemsync.db

.PHONY: run test venv clean demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

run: $(STAMP)
	$(BIN)/python -m server --db $(DB) serve --demo --host $(HOST) --port $(PORT)

# Three laptops go offline, conflict in every way, come back and agree with the server.
demo: $(STAMP)
	PYTHONPATH=. $(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
