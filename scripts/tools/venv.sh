#!/usr/bin/env bash
# Installs the Python test servers (OpenBao's `bao`, moto's `moto_server`) into a virtualenv cached by a
# hash of scripts/tools/python/requirements.txt and the Python version, in
# ${KDEPLOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kdeploy/tools}/venv-<hash>/, and prints its bin
# folder. Test dependencies only: kdeploy itself talks to OpenBao/Vault and AWS over HTTPS.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
command -v "$python" > /dev/null 2>&1 || {
  echo "tools/venv.sh: Python 3.9+ with venv is needed for the OpenBao and AWS test servers." >&2
  exit 1
}
cache=${KDEPLOY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdeploy/tools}
mkdir -p "$cache"
exec 9> "$cache/.venv-lock"
flock 9

requirements=$here/python/requirements.txt
key=$( { "$python" -c 'import sys, platform; print(sys.version, platform.machine())'; cat "$requirements"; } | sha256sum | cut -c1-12)
venv=$cache/venv-$key
if [ ! -f "$venv/.complete" ]; then
  echo "tools/venv.sh: installing the OpenBao and moto test servers into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin"
