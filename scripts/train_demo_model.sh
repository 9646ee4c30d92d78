#!/usr/bin/env bash
# Reproduces models/demo/cde_demo.safetensors: simulator pairs -> cde train (about 8 minutes on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
DATA="${DATA:-runs/demo_data}"
if [ ! -f "$DATA/manifest.jsonl" ]; then
  cde sim generate --tasks demo --seeds 0:100 --size 96 --cameras object --workers 2 --failures 0.2 --out "$DATA"
fi
cde train cde_core/configs/demo_metaworld.yaml "data.root=$DATA" out=runs/demo_model
mkdir -p models/demo
cp runs/demo_model/model.safetensors models/demo/cde_demo.safetensors
cp runs/demo_model/metrics.json models/demo/cde_demo.metrics.json
echo "wrote models/demo/cde_demo.safetensors"
