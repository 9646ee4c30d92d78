#!/usr/bin/env bash
# Idempotent set-up of everything cde needs, inside the checkout:
#   .venv/                  Python 3.11 venv: torch/torchvision pinned, cde_core deps, ROS 2 Kilted wheels
#   build/msgs              CMake build of msg/ (rosidl), installed into the venv prefix
# A second run checks stamps and returns within seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CDE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
cd "$ROOT"

stamp_ok() { [ -f "$VENV/.stamp-$1" ] && [ "$(cat "$VENV/.stamp-$1")" = "$2" ]; }
stamp_set() { echo "$2" > "$VENV/.stamp-$1"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating venv at $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q -c "$ROOT/scripts/constraints.txt")
mkdir -p "$ROOT/build"
# pip's output goes to build/pip.log (this machine's pip config adds a warning per missing local index);
# on failure its tail is shown.
pip_install() {
  "${PIP[@]}" "$@" > "$ROOT/build/pip.log" 2>&1 || {
    grep -v "is ignored: it is neither" "$ROOT/build/pip.log" | tail -30; echo "[setup] pip install failed"; exit 1; }
}

# 1. torch first, pinned (the pair that imports here; pip takes it from local disk).
if ! stamp_ok torch "$(hash_of scripts/constraints.txt)"; then
  echo "[setup] installing torch/torchvision (about 1 minute)"
  pip_install torch==2.14.1 torchvision==0.29.1
  stamp_set torch "$(hash_of scripts/constraints.txt)"
fi

# 2. Python dependencies of cde_core + tests + ROS wheels.
REQ_HASH="$(hash_of scripts/requirements.txt scripts/constraints.txt)"
if ! stamp_ok reqs "$REQ_HASH"; then
  echo "[setup] installing Python and ROS 2 wheels"
  pip_install -r "$ROOT/scripts/requirements.txt"
  stamp_set reqs "$REQ_HASH"
  rm -f "$VENV/.stamp-msgs" "$VENV/.stamp-cde"
fi

# 3. The wheels hard-code the include paths of the machine they were built on; point them at ours.
"$VENV/bin/python" "$ROOT/scripts/repair_rosidl_paths.py" "$VENV"

# 4. Build msg/ with rosidl into the venv prefix.
MSG_HASH="$(hash_of msg/*.msg CMakeLists.txt package.xml)"
if ! stamp_ok msgs "$MSG_HASH"; then
  echo "[setup] generating ROS interfaces from msg/ (about 30 s)"
  rm -rf "$ROOT/build/msgs"
  (
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export PATH="$VENV/bin:$PATH"
    cmake -S "$ROOT" -B "$ROOT/build/msgs" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF -DCDE_INSTALL_PYTHON=OFF > "$ROOT/build/msgs.log" 2>&1 \
    && cmake --build "$ROOT/build/msgs" -j2 >> "$ROOT/build/msgs.log" 2>&1 \
    && cmake --install "$ROOT/build/msgs" >> "$ROOT/build/msgs.log" 2>&1
  ) || { echo "[setup] message build failed, see build/msgs.log"; tail -30 "$ROOT/build/msgs.log"; exit 1; }
  stamp_set msgs "$MSG_HASH"
fi

# 5. cde_core + cde_ros themselves, editable, so the checkout is what runs.
CDE_HASH="$(hash_of setup.py pyproject.toml)"
if ! stamp_ok cde "$CDE_HASH"; then
  echo "[setup] installing cde (editable)"
  pip_install --no-deps --no-build-isolation -e "$ROOT" --config-settings editable_mode=compat
  stamp_set cde "$CDE_HASH"
fi
echo "[setup] ready: $VENV"
