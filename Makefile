# Everything runs inside .venv, created on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every dependency, direct and transitive, pinned (pip-compile; `make lock` refreshes it).
LOCK := requirements.lock

.PHONY: install lock test check demo run bench sim clean

# setuptools' note on every editable install ("be careful with folders named like your
# package") says nothing about this project: that one note is silenced, nothing else.
$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
		$(PY) -m pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

# Re-resolve every dependency to the newest release pyproject.toml allows, from PyPI.
lock: $(STAMP)
	$(PY) -m pip install --quiet pip-tools
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(VENV)/bin/pip-compile --quiet --upgrade \
		--extra dev --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
		--index-url https://pypi.org/simple -o $(LOCK) pyproject.toml

install: $(STAMP)

# The tests mostly wait on sockets and subprocesses: two worker processes (pytest-xdist)
# roughly halve the wall time, even on two cores. Each test module runs whole in one
# worker, so its module-wide fixtures (simulator processes) start once; each worker has
# its own PostgreSQL server. `make test TEST_WORKERS=0` runs everything in one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy core storage simulator bots bench

demo: $(STAMP)
	$(VENV)/bin/nemo-bot demo

run: $(STAMP)
	$(VENV)/bin/nemo-bot run

sim: $(STAMP)
	$(VENV)/bin/nemo-bot sim

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
