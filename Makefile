# The two commands of the README: `make rehearse` and `make test`.
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup rehearse test lint sandbox-down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Only create .venv with the project and its dev tools.
setup: $(STAMP)

## Bring the sandbox up and run the staging rollout on it, approved as "sandbox-auto".
rehearse: $(STAMP)
	$(BIN)/mirror-rollout rehearse --env staging --auto-approve

## Run the test suite: two pytest workers, each starting its own sandbox servers on free ports.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

sandbox-down: $(STAMP)
	$(BIN)/mirror-rollout sandbox down
