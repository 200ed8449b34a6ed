# The two set-up commands of the README. Each creates .venv and installs the project on first use.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# tests/test_report_html.py opens the report in headless Chromium driven by chromedriver (Debian's packages).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: demo test test-fast browser

$(INSTALLED): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PYTHON) -m tuner.sweep --space lambda_feat_quick

# Installs Debian's chromium and chromium-driver when either is missing. Never fails the test run: without apt-get,
# or without the rights to use it (root, or sudo without a password), the browser test skips and says why.
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "browser: no apt-get to install chromium chromium-driver; the browser test will be skipped"; exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then as_root=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as_root="sudo -n"; \
	else echo "browser: apt-get needs root (or sudo without a password); the browser test will be skipped"; exit 0; fi; \
	echo "browser: installing chromium chromium-driver with apt-get"; \
	$$as_root apt-get update -qq && $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		chromium-driver || echo "browser: apt-get could not install chromium chromium-driver; the browser test" \
		"will be skipped"

test: $(INSTALLED) browser
	$(PYTHON) -m pytest

# The developer loop: every test but those marked `slow` (minutes each; `make test` and CI run them too).
test-fast: $(INSTALLED) browser
	$(PYTHON) -m pytest -m "not slow"
