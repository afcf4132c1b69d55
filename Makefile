# WarrenMQ — two commands do everything on a machine with only python3 and make:
#   make run    start the broker (AMQP on 5672, data in ./warren-data)
#   make test   install what the tests need and run them (all but the tests marked slow)
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-dev
SPEC ?= ../shared/spec/amqp-rabbitmq-0.9.1.json
ARGS ?=

.PHONY: run cluster test lint unit interop ui-test cluster-test codegen check-codegen clean bench bench-smoke profile fuzz soak soak-alarms

# Installing also compiles the frame splitter (setup.py); its source changing means rebuilding.
$(STAMP): pyproject.toml setup.py warrenmq/amqp/frames.py warrenmq/amqp/frames.pxd
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/warren-server $(ARGS)

# etcd and three nodes in the foreground (Ctrl-C stops them): AMQP 5672-5674, management
# 15672-15674, cluster links 25672-25674, etcd 2379/2380; data and logs in ./warren-cluster.
# make cluster ARGS="--nodes 5"   (options: python tools/warren_cluster.py --help)
cluster: $(STAMP)
	$(BIN)/python tools/warren_cluster.py --nodes 3 --amqp-port 5672 --management-port 15672 \
		--cluster-port 25672 --etcd-port 2379 --etcd-peer-port 2380 --data-dir ./warren-cluster $(ARGS)

# The long fault-injection runs (marked slow) are left to `make cluster-test`.
test: $(STAMP) check-codegen lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests

# The cluster tests' harness, history checker and load drivers are typed as the package is
# (checked apart: they import tools/ as a package, which mypy would see twice).
lint: $(STAMP)
	$(BIN)/ruff check warrenmq tests tools
	$(BIN)/mypy warrenmq tools
	$(BIN)/mypy tests/server.py tests/cluster

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

interop: $(STAMP)
	$(BIN)/python -m pytest -q tests/interop

# The web UI in headless Chromium (Debian's package, installed here when missing; `make test`
# runs these tests too where it is installed), with a screenshot of every page in docs/ui/.
CHROMIUM = /usr/bin/chromium
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ui-test: $(STAMP)
	[ -x $(CHROMIUM) ] || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver; }
	WARREN_UI_SCREENSHOTS=docs/ui $(BIN)/python -m pytest -q -p no:cacheprovider tests/ui

# Every cluster test, the slow SIGKILL/SIGSTOP runs included (etcd comes from the dev extra).
cluster-test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/cluster $(ARGS)

# The protocol module is generated from RabbitMQ's spec JSON (kept outside this repository).
codegen: $(STAMP)
	$(BIN)/python tools/codegen.py --spec $(SPEC)

check-codegen: $(STAMP)
	$(BIN)/python tools/codegen.py --spec $(SPEC) --check

# --- benchmarks (never part of `make test`) ----------------------------------------------
# make bench RABBIT_URI=amqp://guest:guest@127.0.0.1:5682/%2F   compare with a running RabbitMQ
BENCH_PORT ?= 5673
RABBIT_URI ?=
BENCH_ARGS ?=
BENCH_WARREN = --start-warren "$(BIN)/warren-server --port $(BENCH_PORT) --data-dir $$(mktemp -d) --management-port 0" \
	--warren-uri amqp://guest:guest@127.0.0.1:$(BENCH_PORT)/%2F
BENCH_RABBIT = $(if $(RABBIT_URI),--rabbit-uri '$(RABBIT_URI)' --rabbit-pid auto)

bench: $(STAMP)
	$(BIN)/python bench/compare.py $(BENCH_WARREN) $(BENCH_RABBIT) $(BENCH_ARGS)

bench-smoke: $(STAMP)
	$(BIN)/python bench/compare.py --smoke $(BENCH_WARREN) $(BENCH_RABBIT) $(BENCH_ARGS)

# make profile ARGS="--scenario manual-ack-100": a flame graph of the broker under load, in profile/
profile: $(STAMP)
	$(BIN)/python bench/flamegraph.py --start-broker "$(BIN)/warren-server --port $(BENCH_PORT) --data-dir $$(mktemp -d) --management-port 0" \
		--uri amqp://guest:guest@127.0.0.1:$(BENCH_PORT)/%2F $(ARGS)

# --- fuzzing (never part of `make test`, which runs a few seconds of it) ---------------------
# make fuzz FUZZ_ARGS="--duration 600 --seed 7"   longer, or repeatable
FUZZ_ARGS ?=
fuzz: $(STAMP)
	WARREN_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz/test_frame_fuzz.py
	$(BIN)/python -m tests.fuzz.socket_fuzz --duration 60 $(FUZZ_ARGS)

# --- long resource alarms (never part of `make test`, which holds them a few seconds) -------
# 50 publishers blocked 30 s by a memory and by a disk alarm; the issue-16 program blocked 2 min.
soak-alarms: $(STAMP)
	WARREN_ALARM_HOLD=30 WARREN_ALARM_LOAD=10 WARREN_REPRO_HOLD=120 WARREN_REPRO_HEARTBEAT=5 \
		$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/interop/test_alarm_load.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
