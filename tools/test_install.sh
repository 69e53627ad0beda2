#!/usr/bin/env bash
# The package as a user gets it (`make test-install`): usage  tools/test_install.sh PYTHON
#
# Builds a wheel from a copy of the sources (nothing is written into the checkout), creates
# a fresh virtual environment in a temporary folder outside the checkout, installs the
# wheel there (not editable) and runs tools/installed_smoke.py with that environment's
# python from an empty folder. PYTHON is the checkout's environment (it provides pip,
# setuptools and the dependencies): torch is ~6 GB, so the fresh environment reuses its
# installed dependencies through a .pth file holding their folder as a plain path line --
# .pth files inside that folder (the checkout's editable install of synflow) are not
# processed, so synflow itself can only come from the wheel. Everything is removed at the
# end. Exit status: the smoke script's (0: every check passed).
set -euo pipefail
python="${1:?usage: tools/test_install.sh PYTHON, the python of the checkout environment}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src" "$tmp/empty"

tar -C "$root" --exclude=__pycache__ -cf - pyproject.toml README.md lib | tar -C "$tmp/src" -xf -
"$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$tmp/wheel" "$tmp/src"
"$python" -m venv --without-pip "$tmp/venv"
site_packages() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
site_packages "$python" > "$(site_packages "$tmp/venv/bin/python")/synflow-test-dependencies.pth"
"$python" -m pip --python "$tmp/venv/bin/python" install --quiet --no-deps --no-index \
    "$tmp/wheel"/synflow-*.whl
echo "installed $(basename "$tmp"/wheel/synflow-*.whl) into a fresh environment, $tmp/venv"

cd "$tmp/empty"
env -u PYTHONPATH -u SYNFLOW_FIGURES -u SYNFLOW_RESULTS XDG_DATA_HOME="$tmp/xdg" \
    SYNFLOW_RESULTS="$tmp/results" "$tmp/venv/bin/python" - "$root" < "$root/tools/installed_smoke.py"
