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

## Create .venv with the project and its dev tools, and check for Terraform >= 1.11.
setup: $(STAMP)
	$(BIN)/mirror-rollout doctor
	@# Each flow run is a new Python process: where PYTHONDONTWRITEBYTECODE is set, it
	@# would compile every project module again. Up-to-date files are skipped.
	$(BIN)/python -m compileall -q console flows tasks mirror_rollout
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		echo "hint: 'sandbox up --database postgres' needs PostgreSQL: apt-get install postgresql"

## Bring the sandbox up and run the staging rollout on it, approved as "sandbox-auto".
rehearse: setup
	$(BIN)/mirror-rollout rehearse --env staging --auto-approve

## Run the test suite: two pytest workers, each starting its own sandbox servers on free ports.
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile

## ruff (style, complexity), the import layers (console -> flows -> tasks -> mirror_rollout), mypy.
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

sandbox-down: $(STAMP)
	$(BIN)/mirror-rollout sandbox down
