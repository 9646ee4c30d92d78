#!/usr/bin/env bash
# The README's first command: set up (idempotent), make sure the demo model exists, run the demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
[ -f models/demo/cde_demo.safetensors ] || ./scripts/train_demo_model.sh
exec python -m cde_ros.demo "$@"
