# llem: the two commands a newcomer runs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch first, pinned: an unpinned torch pulls GBs of CUDA wheels. On a GPU machine set
# TORCH_SPEC to the build you want (e.g. TORCH_SPEC="torch --index-url .../cu128").
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# llem lives in the venv: its bin/ goes on PATH by activating it (README, Set up)
ACTIVATE := llem is installed in $(VENV). To use the llem command: source $(VENV)/bin/activate

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)
ifeq ($(MAKECMDGOALS),install)
	@echo "$(ACTIVATE)"
endif

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[transformers,dev]"
	touch $(STAMP)

demo: install
	$(BIN)/llem run configs/demo.yaml
	$(BIN)/llem query "SELECT batch_size, max_new_tokens, count(*) AS cycles, \
	  round(avg(tokens_per_s), 1) AS tokens_per_s, round(avg(latency_p50_s), 4) AS p50_s, \
	  any_value(energy_unavailable) AS energy FROM runs WHERE campaign = 'demo' \
	  GROUP BY ALL ORDER BY ALL"
	@echo "$(ACTIVATE)"

test: install
	$(BIN)/python -m pytest -q -x tests

lint: install
	$(BIN)/ruff check llem tests benchmarks
	$(BIN)/mypy llem

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
