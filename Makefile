# Every target builds its own virtual environment, so a fresh clone needs only Python >= 3.11.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test check lint typecheck bench screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the CPU build (the `local` extra's MiniLM): an unpinned one pulls
	# gigabytes of CUDA packages
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the client-enquiries example on the embedded default (SQLite, offline model, no keys).
demo: $(STAMP)
	$(BIN)/python examples/client-enquiries/run.py --db .batonflow/demo.db

## The whole test suite, with lint and type checks first.
test: check
	$(BIN)/pytest --cov --cov-report=term:skip-covered

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

## The console's pictures in docs/console.md: its browser tests, saving full-page screenshots.
screenshots: $(STAMP)
	BATONFLOW_SCREENSHOTS=docs/console $(BIN)/pytest tests/console -q -p no:cacheprovider

## Side-by-side benchmark against DBOS and LangGraph (own venv: bench/.venv).
bench: $(STAMP)
	$(MAKE) -C bench run

clean:
	rm -rf $(VENV) .batonflow .pytest_cache .mypy_cache .ruff_cache .coverage
