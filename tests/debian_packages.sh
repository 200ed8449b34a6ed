#!/bin/sh
# Installs Debian packages that some tests need when one of their files is missing. Never fails the test run:
# without apt-get, or without the rights to use it (root, or sudo without a password), those tests skip and say why.
#   tests/debian_packages.sh "<the tests>" "<files that must exist>" PACKAGE...
tests=$1 files=$2
shift 2
missing=""
for file in $files; do [ -x "$file" ] || missing=yes; done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "no apt-get to install $*; $tests will be skipped"; exit 0
fi
if [ "$(id -u)" -eq 0 ]; then as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then as_root="sudo -n"
else echo "apt-get needs root (or sudo without a password) to install $*; $tests will be skipped"; exit 0
fi
echo "installing $* with apt-get for $tests"
$as_root apt-get update -qq && $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" \
	|| echo "apt-get could not install $*; $tests will be skipped"
