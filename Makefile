# One entry point for people and CI. `make lab` and `make test` each set up everything they need
# on a fresh machine (Debian packages, a virtualenv with the package and its extras) first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup system lab test test-fast bench soak lint notebooks

setup: $(VENV)/.installed

# The virtualenv is (re)made when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,test,bench]"
	touch $@

# Headless Chromium for the real-browser tests (Playwright drives Debian's build; it cannot
# download its own browser here).
system:
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium fonts-dejavu-core; }

# Open the quick-start notebook on the offline default model in JupyterLab.
lab: setup
	$(VENV)/bin/jupyter lab notebooks/00_quickstart.ipynb

# The whole test suite (tiny models, the real default model, notebooks, the browser).
test: setup system
	$(PY) -m pytest

# Tiny models only (no default model, browser, notebooks, binder, compat matrix, stress): seconds.
test-fast: setup
	$(PY) -m pytest -m "not default_model and not browser and not notebooks and not binder and not compat and not stress and not generated and not atlas_cluster"

# Re-run every tutorial and store it with its outputs (pictures show on GitHub and nbviewer);
# each code cell records its source hash, and tests/test_notebooks.py fails when one is stale.
# NB=02_filters.ipynb re-runs one notebook only.
notebooks: setup
	$(PY) tests/save_notebooks.py $(NB)

bench: setup
	$(PY) bench/run.py

# 2,000 seeded random CNNs, every view against plain Keras (tens of minutes): bench/results/soak.json
soak: setup
	$(PY) bench/soak.py

lint: setup
	$(VENV)/bin/ruff check cnnviz_widgets tests bench
