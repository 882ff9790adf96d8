# `make test` and `make demo` work on a fresh machine: they create .venv and install into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint unit integration demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy --strict src/wifiprov/wire src/wifiprov/device/machine.py \
		src/wifiprov/device/store.py src/wifiprov/device/panel.py src/wifiprov/device/radio \
		src/wifiprov/sim
	$(BIN)/mypy --ignore-missing-imports src/wifiprov

test: lint
	$(BIN)/pytest -q -p no:cacheprovider tests

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

demo: $(STAMP)
	$(BIN)/wifiprov demo

clean:
	rm -rf $(VENV) build src/*.egg-info
