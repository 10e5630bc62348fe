#!/usr/bin/env bash
# Builds (or reuses) a virtualenv holding the official `together` SDK 3.x, for the v2 fidelity test
# (tests/simulator/test_v2_sdk_fidelity.py). It cannot share .venv: that one holds SDK 2.x for the v1
# tests. Cached outside the repo, keyed by the pinned requirements, so a warm machine does not rebuild.
# Prints the virtualenv's python.
#
#   hack/build-sdk3-venv.sh          build (or reuse) and print the python
#   hack/build-sdk3-venv.sh --path   print the python if it is built (exit 1 if not), without building
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
requirements="$here/sdk3/requirements.txt"
cache_root="${SDK3_VENV_CACHE:-$HOME/.cache/together-operator}"
key=$( { python3 --version; cat "$requirements"; } | sha256sum | cut -c1-16)
venv="$cache_root/sdk3-venv-$key"
log() { echo "build-sdk3-venv: $*" >&2; }

if [[ "${1:-}" == "--path" ]]; then
  [[ -f "$venv/.complete" ]] || { log "$venv is not built: run make sdk3-venv"; exit 1; }
  echo "$venv/bin/python"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/sdk3-venv.lock"
flock 9
if [[ ! -f "$venv/.complete" ]]; then
  log "building $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --no-deps -r "$requirements"
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
