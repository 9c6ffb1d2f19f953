#!/usr/bin/env bash
# Write the exact versions installed in a venv to a pip requirements lock (`make lock`).
#   write_lock.sh VENV OUT
set -euo pipefail
venv="$1"; out="$2"
py="$venv/bin/python"
tmp="$out.tmp.$$"
{
  echo "# requirements.lock: the exact versions scripts/setup.sh installs (pip install -r requirements.lock)."
  echo "# Made by \`make lock\` from pyproject.toml's ranges on $("$py" -c 'import platform, sys; print(f"CPython {sys.version.split()[0]}, {platform.machine()} {platform.system()}")')."
  echo "# Regenerate with \`make lock\`, then \`make repro\` and commit both this file and dvc.lock."
  "$py" -m pip freeze --exclude-editable --all | grep -v -e '^pip==' -e '^setuptools==' -e '^wheel==' | LC_ALL=C sort -f
} > "$tmp"
mv "$tmp" "$out"
echo "wrote $out ($(grep -vc '^#' "$out") packages)" >&2
