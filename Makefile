# The two set-up commands of the README. Each creates .venv and installs the project on first use.
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# tests/test_report_html.py opens the report in headless Chromium driven by chromedriver (Debian's packages).
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
# tests/test_onprem_ray_up.py runs `ray up` over SSH to this machine: an OpenSSH server and rsync (Debian's packages).
SSHD := /usr/sbin/sshd
RSYNC := /usr/bin/rsync

.PHONY: demo test test-fast lint browser sshd

$(INSTALLED): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PYTHON) -m tuner.sweep --space lambda_feat_quick

# Debian packages some tests need, installed when missing (tests/debian_packages.sh never fails the run).
browser:
	@sh tests/debian_packages.sh "the browser test" "$(CHROMIUM) $(CHROMEDRIVER)" chromium chromium-driver

# The on-prem test runs its own sshd per connection, never the system's ssh service (which Debian starts on
# install where systemd runs).
sshd:
	@sh tests/debian_packages.sh "the on-prem ray up test" "$(SSHD) $(RSYNC)" openssh-server rsync

test: $(INSTALLED) browser sshd
	$(PYTHON) -m pytest

# The developer loop: every test but those marked `slow` (minutes each; `make test` and CI run them too).
test-fast: $(INSTALLED) browser sshd
	$(PYTHON) -m pytest -m "not slow"

# pyflakes, pycodestyle and isort as configured in pyproject.toml (CONTRIBUTING.md); CI runs it too.
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
