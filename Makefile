# Two commands for a newcomer: `make run` and `make test`. Each installs what it needs.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-heavy lint demo bench clean stop compiled

$(STAMP): pyproject.toml
	@echo "[make] creating $(VENV) and installing the project (first run takes a few minutes) ..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on --upgrade pip
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)

# The ingress's webhook path compiled with mypyc (deploy/compiled.py); `dlr compile` does
# nothing while the build matches the sources.
compiled: $(STAMP)
	$(BIN)/dlr compile || echo "[make] not compiled: the ingress serves its pure-Python webhook path"

## run: start Kafka, ClickHouse, ingress, worker and sink in the foreground (Ctrl-C stops all)
run: $(STAMP) compiled
	$(BIN)/dlr up

## test: lint, type-check, fetch Kafka's jars and the system tools (promtool, chromium), run the whole suite
test: $(STAMP) lint compiled
	$(BIN)/dlr kafka fetch
	$(BIN)/dlr tools fetch
	$(BIN)/pytest -ra --durations=15

## test-heavy: the long failure runs (broker and worker kills at scale), then tests/ingress on the compiled build; CI runs it after `test`
test-heavy: $(STAMP) compiled
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
