# Two commands for a newcomer: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The ingress's webhook path compiled with mypyc (deploy/compiled.py), rebuilt when a source changes.
COMPILED := .build/compiled/manifest.json

.PHONY: run test test-heavy lint demo bench clean stop

$(STAMP): pyproject.toml
	@echo "[make] creating $(VENV) and installing the project (first run takes a few minutes) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)

$(COMPILED): $(STAMP) $(shell find ingress schemas -name '*.py')
	$(BIN)/dlr compile || echo "[make] not compiled: the ingress serves its pure-Python webhook path"

## run: start Kafka, ClickHouse, ingress, worker and sink in the foreground (Ctrl-C stops all)
run: $(STAMP) $(COMPILED)
	$(BIN)/dlr up

## test: lint, type-check, fetch Kafka's jars and the system tools (promtool, chromium), run the whole suite
test: $(STAMP) lint $(COMPILED)
	$(BIN)/dlr kafka fetch
	$(BIN)/dlr tools fetch
	$(BIN)/pytest -ra --durations=15

## test-heavy: the long failure runs (broker and worker kills at scale), then tests/ingress on the compiled build; CI runs it after `test`
test-heavy: $(STAMP) $(COMPILED)
	$(BIN)/dlr kafka fetch
	$(BIN)/dlr tools fetch
	$(BIN)/pytest -ra --durations=15 -m heavy
	@echo "[make] tests/ingress again, on the compiled webhook path (.build/compiled)"
	DLR_TEST_COMPILED=1 PYTHONPATH=.build/compiled $(BIN)/python -P -m pytest \
		--import-mode=append -p no:cacheprovider -q tests/ingress

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

## demo: send simulated traffic to the running stack and check it end to end
demo: $(STAMP)
	$(BIN)/dlr demo --messages 2000

stop:
	-$(BIN)/dlr kafka stop
	-$(BIN)/dlr clickhouse stop

clean:
	rm -rf .data .build
