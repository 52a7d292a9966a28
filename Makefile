# One entry point for people and CI: `make demo` and `make test` build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned here (builds known to work together); pyproject declares ranges.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# Gradio 6.31 (the ui extra, in dev) caps Pillow below 13, but Pillow 12 cannot read back the
# YCbCr TIFFs tests/test_data.py writes; Gradio runs on 13 (tests/test_ui.py), so 13 goes in last.
PILLOW_PIN := pillow==13.0.0

.PHONY: install browser demo test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet $(PILLOW_PIN)
	touch $@

demo: install
	$(BIN)/cyclegan demo

test: install browser
	$(BIN)/ruff check src tests benchmarks scripts
	GOMP_SPINCOUNT=1000 $(BIN)/python -m pytest -q  # shares the cores (benchmarks/RESULTS.md)

# Debian's chromium, which the tests of `cyclegan ui` drive (Playwright cannot download its own here)
browser:
	scripts/ensure-chromium

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
