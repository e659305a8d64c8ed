# The two commands a new user needs: `make demo` (end-to-end run on bundled samples) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build from the local wheel cache; on a GPU machine install your own torch first (any >=2.4 works).
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-out

.PHONY: install demo test test-fast lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

SOURCES := data/samples/sources

demo: install
	rm -rf $(DEMO_OUT)
	$(BIN)/llamaprep quality train --positive data/samples/quality/positive --negative data/samples/quality/negative \
		--output $(DEMO_OUT)/quality.bin
	$(BIN)/llamaprep prepare 'commoncrawl=data/samples/web/*.jsonl.gz' 'commoncrawl=data/samples/web/*.wet.gz' \
		'commoncrawl=data/samples/web/*.warc.gz' --output $(DEMO_OUT)/prepared --config data/demo-prepare.toml \
		--quality-model $(DEMO_OUT)/quality.bin --keep-rejected
	$(BIN)/llamaprep stats $(DEMO_OUT)/prepared --html $(DEMO_OUT)/report.html
	$(BIN)/llamaprep prepare --recipe llama-c4 '$(SOURCES)/c4/*.json.gz' -o $(DEMO_OUT)/sources/c4 -q
	$(BIN)/llamaprep prepare --recipe llama-wikipedia '$(SOURCES)/wikipedia/*.bz2' -o $(DEMO_OUT)/sources/wikipedia -q
	$(BIN)/llamaprep prepare --recipe llama-github $(SOURCES)/github/repos.tar.gz -o $(DEMO_OUT)/sources/github -q
	$(BIN)/llamaprep prepare --recipe llama-arxiv '$(SOURCES)/arxiv/*/*.tex' '$(SOURCES)/arxiv/*.tar.gz' \
		-o $(DEMO_OUT)/sources/arxiv -q
	$(BIN)/llamaprep prepare --recipe llama-stackexchange '$(SOURCES)/stackexchange/*.7z' \
		'$(SOURCES)/stackexchange/*/Posts*.xml' -o $(DEMO_OUT)/sources/stackexchange -q
	$(BIN)/llamaprep prepare --recipe llama-books '$(SOURCES)/books/*_excerpt.txt' -o $(DEMO_OUT)/sources/books -q
	$(BIN)/llamaprep stats $(DEMO_OUT)/prepared $(DEMO_OUT)/sources/* --token-budget 2M
	$(BIN)/llamaprep tokenizer train $(DEMO_OUT)/prepared $(DEMO_OUT)/sources/* --vocab-size 2000 \
		--output $(DEMO_OUT)/tokenizer
	$(BIN)/llamaprep tokenize $(DEMO_OUT)/prepared $(DEMO_OUT)/sources/* --tokenizer $(DEMO_OUT)/tokenizer/tokenizer.model \
		--output $(DEMO_OUT)/tokens --val-fraction 0.05
	$(BIN)/llamaprep stats $(DEMO_OUT)/tokens
	$(BIN)/llamaprep train --data $(DEMO_OUT)/tokens --mixture llama --config tiny --seq-len 128 \
		--micro-batch-size 16 --steps 300 --lr 3e-3 --warmup-steps 30 --eval-every 50 --eval-batches 8 \
		--output $(DEMO_OUT)/model
	$(BIN)/llamaprep generate --checkpoint $(DEMO_OUT)/model --prompt "The" --max-new-tokens 60 --seed 0

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q

# the edit loop: everything but the tests marked slow (extra processes, runner services, big documents)
test-fast: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info
