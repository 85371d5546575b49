# Step Pathways: `make run` sets everything up and starts the service; `make test` sets up and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app service
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test install deploy demo bench clean

include mk/vendor.mk

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# A developer's machine: the data encryption key is generated into instance/ (a deployment sets DATA_ENCRYPTION_KEYS).
run bench: export DEVELOPMENT = true

## Set up the database, create the five reference councils with their pathways and demo users, serve on http://$(HOST):$(PORT)
run: install vendor
	$(FLASK) db upgrade
	$(FLASK) demo-councils
	$(FLASK) demo-users
	$(BIN)/flask --app service.wsgi run --host $(HOST) --port $(PORT) --no-reload

## Pass every test (SQLite and a throwaway PostgreSQL server; browser tests in Debian's chromium)
# One worker per core, a test file to a worker: each worker starts its own PostgreSQL and browser site.
test: install vendor
	$(BIN)/python -m pytest -n auto --dist loadfile

bench: install
	$(BIN)/python bench/task_completion.py
	$(BIN)/python bench/completion_floor.py
	$(BIN)/python bench/timers.py
	$(BIN)/python bench/dmn_tck.py

clean: vendor-clean
	rm -rf $(VENV) instance .pytest_cache
