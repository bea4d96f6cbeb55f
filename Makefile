# Dockyard: every entry point an operator or CI uses. Each target does its own
# set-up (virtualenv, Docker engine, lab base image) and is safe to rerun.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

VENV := .venv
BIN := $(VENV)/bin
CACHE := .cache
COLLECTION_LINK := $(CACHE)/collections/ansible_collections/dockyard/platform
# ansible-test skips every file below a hidden directory, so the copy lives in /tmp.
SANITY_ROOT := /tmp/dockyard-sanity/ansible_collections/dockyard/platform
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

export PATH := $(CURDIR)/$(BIN):$(CURDIR)/$(CACHE)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(CACHE)/collections

.PHONY: help lab lab-down lab-environments lab-environments-down test test-fast lint sanity unit integration molecule bench fuzz \
        build venv engine base-image tools

help:
	@echo "make lab        bring up the local lab cluster, run playbooks/site.yml on it, deploy the demo app"
	@echo "make lab-down   remove every lab container, network and volume"
	@echo "make lab-environments       two lab environments of different shapes, side by side (docs/lab.md)"
	@echo "make lab-environments-down  remove both, with their secrets directories"
	@echo "make test       lint, sanity, unit, integration and every Molecule scenario"
	@echo "make test-fast  lint and unit tests"
	@echo "make bench      benchmarks under benchmarks/"
	@echo "make build      build the collection tarball"

$(BIN)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../../.. $@

venv: $(BIN)/.installed $(COLLECTION_LINK)

engine:
	@bash lab/ensure-engine.sh

base-image: engine
	@bash lab/base-image/build.sh

tools:
	@bash tests/tools/fetch-consul.sh $(CACHE)/bin
	@bash tests/tools/fetch-haproxy.sh $(CACHE)/bin
	@bash tests/tools/install-zookeeper.sh

lab: venv base-image
	ansible-playbook lab/up.yml
	ansible-playbook -i inventories/lab playbooks/site.yml
	ansible-playbook -i inventories/lab lab/demo-app.yml

lab-down: venv
	ansible-playbook lab/down.yml

lab-environments: venv base-image
	bash lab/environments/demo.sh

lab-environments-down: venv
	bash lab/environments/demo.sh clean

build: venv
	ansible-galaxy collection build --force --output-path $(CACHE)/dist

lint: venv
	ruff check .
	ruff format --check .
	ansible-lint

sanity: venv
	rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	git ls-files -co --exclude-standard -z | tar --null -T - -c | tar -x -C $(SANITY_ROOT)
	bash tests/tools/get-pip-offline.sh
	cd $(SANITY_ROOT) && ansible-test sanity --requirements --python 3.11 --color no

unit: venv
	pytest tests/unit

# Three workers on two cores: the tests mostly wait on real daemons. tests/integration/conftest.py keeps each
# file on one worker and every Docker test on the same one.
integration: venv tools base-image
	pytest -n 3 tests/integration

# The per-role scenarios run beside the shared full-platform one (tests/tools/run-molecule.sh).
molecule: venv base-image
	bash tests/tools/run-molecule.sh $(SCENARIOS)

test-fast: lint unit

test: lint sanity unit integration molecule

# The hostile-data property tests with many more examples and a new seed each run.
fuzz: venv tools
	HYPOTHESIS_EXAMPLES=2000 HYPOTHESIS_RANDOM=1 pytest tests/integration/haproxy/test_hostile_data.py -k property

bench: venv tools base-image
	for benchmark in benchmarks/bench_*.py; do python $$benchmark; done
