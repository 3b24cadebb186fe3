#!/usr/bin/env bash
# The seed's workflow with mstore, run on a scratch copy of the shipped example store
# (the project's own models/, .mstore/ and .env stay untouched).
#   usage: scripts/tour.sh            (uses `mstore` from .venv/bin or PATH)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mstore=${MSTORE:-$here/.venv/bin/mstore}
[ -x "$mstore" ] || mstore=$(command -v mstore)
python=$(dirname "$mstore")/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a "$here/models" "$here/.mstore" "$here/.env" "$work/"
mkdir -p "$work/scripts" && cp "$here/scripts/switch_model_version.py" "$work/scripts/"
cd "$work"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$mstore" verify
step "$mstore" list
step "$python" scripts/switch_model_version.py --info archive/v3_2024-11-10
step "$python" scripts/switch_model_version.py --env staging --dry-run
step "$python" scripts/switch_model_version.py --env staging
# A new candidate from "training": v5's files with a retrained model and new metadata.
mkdir candidate && cp models/staging/* candidate/ && chmod u+w candidate/*
printf 'retrained weights\n' >> candidate/model.pth
"$python" - <<'PY'
import json, pathlib
path = pathlib.Path("candidate/metadata.json")
meta = json.loads(path.read_text())
meta.update(version="v6_candidate", created_date="2024-11-25", description="v5 retrained")
path.write_text(json.dumps(meta, indent=2) + "\n")
PY
step "$mstore" commit candidate --to staging -m "v6: retrained on November data"
step "$mstore" diff production staging
step "$mstore" promote staging -m "v6 passed validation"
step "$mstore" list
step "$mstore" rollback production -m "v6 regressed on live traffic"
step "$mstore" checkout archive/v3_2024-11-10
step "$mstore" log -n 6
step "$mstore" verify
