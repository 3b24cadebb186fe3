#!/usr/bin/env bash
# Install what the benchmark compares against (never needed by mstore itself):
# hyperfine, b3sum, strace and git-lfs from Debian; DVC from PyPI into bench/.peers.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
for tool in hyperfine b3sum strace git-lfs; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -x .peers/bin/dvc ]; then
  python3 -m venv .peers
  .peers/bin/pip install -q dvc 2>&1 | grep -v '^WARNING: Location' || true
fi
.peers/bin/dvc --version
git lfs version
