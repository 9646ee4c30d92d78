#!/usr/bin/env bash
# The README's test command: set up (idempotent), then run the whole suite on one intra-op thread.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
# shellcheck source=env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"
exec python -m pytest "$@"
