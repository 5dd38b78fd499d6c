# image-analysis: every target sets up what it needs (a Python 3.13 .venv; .tools/sam for SAM CLI).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
SAM := .tools/sam/bin/sam
CHECKOV := .tools/checkov/bin/checkov
PY313_DIR = $(shell dirname "$$(bash scripts/find-python.sh)")
# sam build resolves the runtime's python3.13 on PATH; telemetry off for local and CI runs.
SAM_ENV = PATH="$(PY313_DIR):$$PATH" SAM_CLI_TELEMETRY=0
EVENT ?= events/s3-put.json
# The CPU `make build` targets; pass the same Architecture to sam deploy (arm64 is the template's default).
ARCHITECTURE ?= arm64
# The local stack's one endpoint: http://127.0.0.1:$(PORT).
PORT ?= 5050
# The moderators' console (make console): http://127.0.0.1:$(CONSOLE_PORT)/ (0: any free port).
CONSOLE_PORT ?= 8080
# `make demo PROVIDERS=imagga SANDBOX=1` reaches the demo as environment variables (as does every
# VAR=value given to make: ROUTING, NSFW_THRESHOLD, ...; local/configuration.py maps them to the template).
export PROVIDERS SANDBOX

.PHONY: help setup tools demo test test-slow invoke local-stack soak bench bench-check lint validate checkov build smoke schema schema-check format clean console test-browser console-screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: ## Create .venv (Python 3.13) with the app's and the tests' dependencies
	@bash scripts/bootstrap.sh

tools: ## Also create .tools/sam (SAM CLI and cfn-lint) and .tools/checkov
	@bash scripts/bootstrap.sh --tools

demo: setup ## Run the whole pipeline on an embedded local AWS (no account, keys, Docker or network)
	@$(PY) -m local.demo

test: setup ## Run the unit and integration tests (all but those marked slow)
	@$(PY) -m pytest $(PYTEST_ARGS)

test-slow: setup tools ## The slow tests: a build for each CPU (every native library checked), make local-stack from a clean checkout
	@$(PY) -m pytest -m slow $(PYTEST_ARGS)

invoke: setup ## Run the handler once on EVENT (default events/s3-put.json), on the running local stack if there is one
	@$(PY) -m local.invoke $(EVENT)

local-stack: setup ## The stack live on one endpoint (PORT=5050): uploads and deletions are analyzed as they land
	@$(PY) -m local.serve --port $(PORT)

console: setup ## The moderators' console on a live local stack seeded with the demo's uploads (CONSOLE_PORT=8080)
	@$(PY) -m local.console --port $(CONSOLE_PORT)

test-browser: setup ## The console in headless Chromium (Debian's chromium package) against make console's stack
	@PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pytest -m browser $(PYTEST_ARGS)

console-screenshots: setup ## Regenerate docs/console/*.png (the queue and a review) in headless Chromium
	@PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m local.console_screenshots

soak: setup ## A longer fault-injection run (3000 uploads, 30% vendor faults), then the model's soak profile
	@$(PY) -m local.faultrun --uploads 3000
	@MODEL_PROFILE=soak $(PY) -m pytest -m slow -s -p no:cacheprovider tests/model tests/integration/test_model_emulator.py

bench: build ## Benchmarks against baselines measured in the same run; writes docs/performance.md
	@$(SAM_ENV) bash scripts/host-build.sh >/dev/null
	@$(PY) -m local.bench $(BENCH_ARGS)

bench-check: setup ## make bench in a fresh clone of what is committed, and its document read back
	@$(PY) -m pytest -m bench $(PYTEST_ARGS)

validate: tools ## sam validate --lint (cfn-lint)
	@$(SAM_ENV) $(SAM) validate --lint
	@$(SAM_ENV) $(SAM) validate --lint -t scale/backfill-distributed-map.yaml

checkov: tools ## checkov security checks on both templates (each suppression is written beside its resource)
	@$(CHECKOV) --framework cloudformation --compact --quiet --skip-download \
		-f template.yaml -f scale/backfill-distributed-map.yaml

build: tools ## sam build into .aws-sam/build (ARCHITECTURE=x86_64 for that CPU; each CPU has its own cache)
	@$(SAM_ENV) bash scripts/build.sh $(ARCHITECTURE)

smoke: tools setup ## Build for this machine's CPU and run the built handler on an event against the emulator
	@$(SAM_ENV) bash scripts/smoke.sh

schema: setup ## Regenerate docs/schema/*.json from the models
	@$(PY) -m local.schema --write

schema-check: setup ## Fail when docs/schema/*.json is out of date
	@$(PY) -m local.schema --check

lint: setup ## ruff check and format check
	@$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: setup ## ruff fix and format
	@$(PY) -m ruff check --fix . ; $(PY) -m ruff format .

clean: ## Remove build output and environments
	rm -rf .aws-sam .venv .tools .pytest_cache .ruff_cache
