# The two set-up commands of the README. Each creates .venv and installs the project on first use.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test

$(INSTALLED): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PYTHON) -m tuner.sweep --space lambda_feat_quick

test: $(INSTALLED)
	$(PYTHON) -m pytest
