# Two commands on a fresh machine: `make demo` and `make test`. Each creates or reuses .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.braindino-installed
DEMO_OUT ?= demo_out

.PHONY: demo test integration evidence lint format clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m braindino.demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

# The SLURM integration suite (slurm/local_cluster.sh; root, installs slurm-wlm + munge if missing).
integration: $(STAMP)
	BRAINDINO_INTEGRATION=1 $(PY) -m pytest -q tests/integration

# Evidence that pretraining works (tests/evidence, about 12 minutes on 2 cores).
evidence: $(STAMP)
	BRAINDINO_EVIDENCE=1 $(PY) -m pytest -q -s tests/evidence

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
