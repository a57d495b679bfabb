# quotaflow: `make run` serves the API locally, `make test` runs every suite. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DDB_LOCAL_JAR := .cache/dynamodb-local/DynamoDBLocal.jar
CDK := npx --prefix infra --no-install cdk
INFRA_DEPS := infra/node_modules/.package-lock.json

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := true
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: install run demo test test-unit test-integration test-infra lint ddb-local infra-deps browser synth deploy bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

ddb-local: $(DDB_LOCAL_JAR)

$(DDB_LOCAL_JAR): tools/fetch-ddb-local.sh
	bash tools/fetch-ddb-local.sh

infra-deps: $(INFRA_DEPS)

$(INFRA_DEPS): infra/package.json infra/package-lock.json
	npm ci --prefix infra --no-audit --no-fund

run: install
	$(BIN)/quotaflow serve

demo: install
	$(BIN)/quotaflow demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd infra && ../$(BIN)/mypy --strict quotaflow_infra app.py

# The browser tests drive Debian's Chromium (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && apt-get install -y -qq chromium; }

test: install ddb-local infra-deps browser lint
	$(BIN)/python -m pytest
	$(MAKE) test-js

# The JavaScript client (clients/js/): built, type-checked and tested against `quotaflow serve`. No Node: it fails.
.PHONY: test-js
test-js: install
	@command -v npm >/dev/null 2>&1 || { echo "test-js: Node.js (>= 18) and npm are required" >&2; exit 1; }
	cd clients/js && npm ci --no-audit --no-fund && npm run build && npm test

test-unit: install
	$(BIN)/python -m pytest -m unit

test-integration: install ddb-local browser
	$(BIN)/python -m pytest -m integration

test-infra: install infra-deps
	$(BIN)/python -m pytest -m infra

synth: install infra-deps
	$(CDK) synth --no-notices

deploy: install infra-deps
	$(CDK) deploy --no-notices

# Cost, latency, throughput and cold start, measured against the floor in one run (~2 min; not part of `make test`).
# QUOTAFLOW_BENCH_EXPORT_USERS=10000 make bench runs the billing export over 10,000 users (~80 s more).
bench: install ddb-local
	$(BIN)/python -m tests.bench.run

clean:
	rm -rf $(VENV) .cache cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts infra/node_modules
