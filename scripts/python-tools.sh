#!/usr/bin/env bash
# Makes (once) the Python virtual environment of the tests that drive dothi with
# Python tools from PyPI: ckanapi (the CKAN project's client) and pySHACL (the
# DCAT-AP catalogue's validation). Prints the environment's python interpreter.
# The environment lives in target/, never committed; DOTHI_TEST_VENV moves it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DOTHI_TEST_VENV:-$PWD/target/test-venv}
python=${PYTHON:-python3}
if ! "$venv/bin/python" -c 'import ckanapi, pyshacl' 2>/dev/null; then
    echo "installing ckanapi and pyshacl in $venv" >&2
    "$python" -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check 'ckanapi>=4.7' 'pyshacl>=0.25' >&2
fi
echo "$venv/bin/python"
