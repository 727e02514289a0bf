# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the test venv also carries the `watermark` (torch, transformers) and `spark` (PySpark) extras;
# `make demo` does not
WM_STAMP := $(VENV)/.installed-watermark

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(WM_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,watermark,spark]'
	touch $(WM_STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/distillguard demo

lint: $(WM_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: $(WM_STAMP)
	bash scripts/redis-server.sh install  # the gateway's Redis tests start their own server on 127.0.0.1
	bash scripts/chromium.sh install  # the dashboard's browser tests drive Debian's headless chromium
	bash scripts/spark.sh install  # --engine spark: Java 17 from Debian (PySpark comes with the spark extra)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info demo-out
