# WarrenMQ — two commands do everything on a machine with only python3 and make:
#   make run    start the broker (AMQP on 5672, data in ./warren-data)
#   make test   install what the tests need and run them
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-dev
SPEC ?= ../shared/spec/amqp-rabbitmq-0.9.1.json
ARGS ?=

.PHONY: run test lint unit interop codegen check-codegen clean bench bench-smoke profile fuzz soak

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/warren-server $(ARGS)

test: $(STAMP) check-codegen lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/ruff check warrenmq tests tools
	$(BIN)/mypy warrenmq tools

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

interop: $(STAMP)
	$(BIN)/python -m pytest -q tests/interop

# The protocol module is generated from RabbitMQ's spec JSON (kept outside this repository).
codegen: $(STAMP)
	$(BIN)/python tools/codegen.py --spec $(SPEC)

check-codegen: $(STAMP)
	$(BIN)/python tools/codegen.py --spec $(SPEC) --check

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
