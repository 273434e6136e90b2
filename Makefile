# make run: serve the API on http://127.0.0.1:5000 (SQLite under instance/).
# make test: the whole suite on SQLite and, when reachable, on PostgreSQL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app app

.PHONY: run test bench lint format assets screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(FLASK) db upgrade
	$(FLASK) demo
	SCHEDULER_ENABLED=1 $(FLASK) run --host 127.0.0.1 --port 5000

test: $(STAMP)
	$(BIN)/pytest -q
	@if $(BIN)/python -c "import psycopg; psycopg.connect('$(PG_TEST_URL_PLAIN)', connect_timeout=3).close()" 2>/dev/null; then \
		TEST_DATABASE_URL='$(PG_TEST_URL)' $(BIN)/pytest -q; \
	elif [ -n "$(REQUIRE_POSTGRES)" ]; then \
		echo "PostgreSQL at 127.0.0.1:5432 is not reachable" >&2; exit 1; \
	else \
		echo "PostgreSQL at 127.0.0.1:5432 is not reachable: PostgreSQL run skipped"; \
	fi

PG_TEST_URL_PLAIN ?= postgresql://postgres@127.0.0.1:5432/test
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

# Every benchmark, each beside a reference from the same run; the table goes to
# bench/results/summary.md. Set BENCH_POSTGRES to a database they may empty (not test).
BENCH_POSTGRES ?= postgresql+psycopg://postgres@127.0.0.1:5432/bench

bench: $(STAMP)
	$(BIN)/python bench/suite.py --postgres '$(BENCH_POSTGRES)'

lint: $(STAMP)
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench

format: $(STAMP)
	$(BIN)/ruff format app tests bench
	$(BIN)/ruff check --fix app tests bench

# The README's pictures, taken by the browser tests.
screenshots: $(STAMP)
	SCREENSHOTS=1 $(BIN)/pytest -q tests/browser

assets: $(STAMP)
	$(BIN)/python -c "from app.assets import refresh; refresh()"

clean:
	rm -rf $(VENV) instance .pytest_cache
