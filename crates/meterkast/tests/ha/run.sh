#!/usr/bin/env bash
# The Home Assistant end-to-end suite (see e2e.py): installs the pinned Home Assistant
# once into a venv cached outside the clone, keyed by the pin files' hash, then runs
# the driver against the meterkast binary ($MK_BIN, default target/debug/meterkast).
#   crates/meterkast/tests/ha/run.sh [--feed whole] [--keep] ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)

python=${MK_HA_PYTHON:-}
if [ -z "$python" ]; then
  python=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*/bin/python3 2>/dev/null | sort -V | tail -1)
fi
[ -x "$python" ] || { echo "no Python 3.13 (pyenv's, or set MK_HA_PYTHON)" >&2; exit 1; }

hash=$(cat "$here/requirements.txt" "$here/constraints.txt" | sha256sum | cut -c1-16)
venv=${XDG_CACHE_HOME:-$HOME/.cache}/meterkast/ha-venv-$hash
if [ ! -f "$venv/.installed" ]; then
  echo "installing Home Assistant into $venv (once; a few minutes)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/requirements.txt" -c "$here/constraints.txt"
  touch "$venv/.installed"
fi

bin=${MK_BIN:-$root/target/debug/meterkast}
[ -x "$bin" ] || { echo "no meterkast binary at $bin: cargo build -p meterkast, or set MK_BIN" >&2; exit 1; }
exec "$venv/bin/python" "$here/e2e.py" --bin "$bin" "$@"
