# The two commands of the README: `make demo` and `make test`. Each bootstraps .venv from
# nothing but Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean postgres postgres-stop notebooks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/profiling run configs/demo.yaml --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks sample_data scripts
	$(BIN)/mypy

# The store tests run against GeoPackage and PostGIS: a throwaway PostgreSQL server (installed
# from Debian's packages when missing) is started first and its URL handed to pytest. In CI a
# server that cannot be started fails the run; elsewhere the PostGIS tests are then skipped.
# The map and atlas tests drive Debian's Chromium (installed when missing); in CI a browser that
# cannot be installed fails the run instead of skipping those tests.
test: $(STAMP) lint
	@bash scripts/install_chromium.sh || { echo "no Chromium for the browser tests"; \
	  [ "$$CI" != true ] || exit 1; }
	@url=$$(bash scripts/start_postgres.sh) || { echo "no PostgreSQL with PostGIS"; \
	  [ "$$CI" != true ] || exit 1; }; \
	echo "PROFILING_TEST_PG_URL=$$url $(BIN)/pytest"; \
	PROFILING_TEST_PG_URL="$$url" $(BIN)/pytest

postgres:
	bash scripts/start_postgres.sh

postgres-stop:
	bash scripts/start_postgres.sh --stop

# The analyst notebooks run on the sample city and saved with their outputs (committed, so the
# repository shows their charts; tests/test_notebooks.py checks what they hold).
notebooks: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py

clean:
	rm -rf $(VENV) out
