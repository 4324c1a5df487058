# One-word entry points for learners, instructors and CI.
#   make lab    set up (first time only) and open the course in JupyterLab
#   make test   set up (first time only) and run every test: unit tests + nbval over all notebooks
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
PYTEST_ARGS ?=
# CPU-only torch (without the 4 GB of CUDA libraries and triton the default wheels bring): set TORCH_INDEX to the CPU wheel
# index that PyTorch's "Get started" page gives for "Compute Platform: CPU", e.g. make lab TORCH_INDEX=...
TORCH_INDEX ?=

.PHONY: lab test setup data browser lint clean-venv

lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.default_url=/lab/tree/01_forward_process.ipynb \
	  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

test: setup browser
	$(BIN)/ruff check .
	$(BIN)/pytest -p no:cacheprovider --nbval-lax --nbval-current-env tests $(wildcard notebooks/*.ipynb) $(PYTEST_ARGS)

setup: $(VENV)/.installed data

# Debian's Chromium for the real-browser tests (tests/system/test_browser.py); never `playwright install`.
browser:
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium) \
	    || echo "Could not install chromium; the browser tests will be skipped (they fail under CI=true)."; \
	else \
	  echo "No apt here: install Chromium at /usr/bin/chromium (or set DDIM_LESSON_CHROMIUM) for the browser tests."; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.10 is needed, found " + sys.version.split()[0]) if sys.version_info < (3, 10) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch torchvision --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# JupyterLab's "get Jupyter news?" toast: its announcements plugin off, for this environment only
	$(BIN)/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null
	touch $@

# Real Fashion-MNIST from Debian's package, where apt exists and the data is missing.
data:
	@if [ -n "$$DDIM_LESSON_DATA" ] || [ -f "$(DATA)" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  echo "Installing Debian's dataset-fashion-mnist (real Fashion-MNIST, 30 MB)..."; \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist) \
	    || echo "Could not install dataset-fashion-mnist; the notebooks still run (they use the images shipped in the package). See README: Troubleshooting."; \
	else \
	  echo "No apt here: set DDIM_LESSON_DATA or let torchvision download Fashion-MNIST (README: Troubleshooting)."; \
	fi

lint: setup
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
