# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv with a Python >= 3.12 found automatically (PATH, then pyenv),
# and (re)install the project whenever pyproject.toml changes.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x "$(PY)" ]; then \
	  interp=$$(scripts/find-python.sh) || exit 1; \
	  echo "Creating $(VENV) with $$interp"; \
	  "$$interp" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e '.[test]'; \
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m novasonic.demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
