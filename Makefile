# The two commands a new user needs: `make demo` (end-to-end run on bundled samples) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build from the local wheel cache; on a GPU machine install your own torch first (any >=2.4 works).
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-out

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: install
	rm -rf $(DEMO_OUT)
	$(BIN)/llamaprep prepare data/samples/web --output $(DEMO_OUT)/prepared --keep-rejected
	$(BIN)/llamaprep stats $(DEMO_OUT)/prepared --html $(DEMO_OUT)/report.html

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
