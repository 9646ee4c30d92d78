#!/usr/bin/env bash
# Idempotent set-up of everything cde needs, inside the checkout:
#   .venv/                  Python 3.11 venv: torch/torchvision pinned, cde_core deps, ROS 2 Kilted wheels
#   build/msgs              CMake build of msg/ (rosidl), installed into the venv prefix together with links
#                           to the checkout's launch/, config/, models/ and bin/ (the whole package in one prefix)
#   ROS 2 launch + ros2 CLI from a directory of upstream source archives, when one is given:
#     ./scripts/setup_env.sh --ros-vendor DIR     or     CDE_ROS_VENDOR_DIR=DIR ./scripts/setup_env.sh
#   (the Makefile and .ci/run pass ../shared/vendor/ros2 when it exists). Without one, nothing of these is
#   installed: a machine with ROS 2 installed uses its own launch/ros2; on one with neither, the tests that
#   need them skip.
# A second run checks stamps and returns within seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CDE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3.11}"
VENDOR="${CDE_ROS_VENDOR_DIR:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --ros-vendor) VENDOR="${2:?--ros-vendor needs a directory}"; shift 2 ;;
    --ros-vendor=*) VENDOR="${1#*=}"; shift ;;
    *) echo "usage: $0 [--ros-vendor DIR]" >&2; exit 2 ;;
  esac
done
if [ -n "$VENDOR" ]; then
  [ -d "$VENDOR" ] || { echo "[setup] ROS vendor directory not found: $VENDOR"; exit 1; }
  VENDOR="$(cd "$VENDOR" && pwd)"
fi
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
  rm -f "$VENV/.stamp-msgs" "$VENV/.stamp-cde" "$VENV/.stamp-rostools"
fi

# 3. The wheels hard-code the include paths of the machine they were built on; point them at ours.
"$VENV/bin/python" "$ROOT/scripts/repair_rosidl_paths.py" "$VENV"

# 4. Build msg/ with rosidl into the venv prefix, plus links to the checkout's launch files, config/, models/
#    and bin/ executables (CMakeLists.txt with CDE_INSTALL_PYTHON=OFF): the whole package in one prefix, so
#    `ros2 launch cde_ros perception.launch.py` works from the venv. Redone when msg/ or the package files
#    change, when the checkout moves (the links point into it) or when launch files are added or removed.
MSG_HASH="$(hash_of msg/*.msg CMakeLists.txt package.xml)-$(echo "$ROOT" | sha256sum | cut -c1-8)-$(find launch -maxdepth 1 -type f | sort | sha256sum | cut -c1-8)"
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

# 5. ROS 2 launch, launch_ros and the ros2 CLI from the upstream archives in $VENDOR (README there), installed
#    like any dependency: the pure-Python packages with pip (--no-deps: their PyPI deps are in
#    requirements.txt, and PyPI's unrelated `launch` must never come in), composition_interfaces (a .srv
#    package launch_ros imports) built with rosidl into the venv prefix like msg/. Nothing is copied into
#    the repository; the extracted sources live in build/ros_vendor.
ROS_PY_PACKAGES=(launch launch_xml launch_yaml launch_ros ros2launch rosidl_runtime_py
                 ros2cli ros2pkg ros2run ros2topic ros2node ros2param ros2lifecycle ros2service ros2interface ros2action)
if [ -n "$VENDOR" ]; then
  compgen -G "$VENDOR/*.tar.gz" > /dev/null || { echo "[setup] no .tar.gz archives in $VENDOR"; exit 1; }
  VENDOR_HASH="$(hash_of "$VENDOR"/*.tar.gz)"
  if ! stamp_ok rostools "$VENDOR_HASH" || [ ! -x "$VENV/bin/ros2" ]; then
    echo "[setup] installing ROS 2 launch and the ros2 CLI from $VENDOR (about 40 s)"
    SRC="$ROOT/build/ros_vendor"
    rm -rf "$SRC" && mkdir -p "$SRC"
    for archive in "$VENDOR"/*.tar.gz; do tar -xzf "$archive" -C "$SRC"; done
    # a package is the directory of a package.xml, found by the <name> inside it
    declare -A pkg_dir=()
    while IFS= read -r xml; do
      pkg_dir["$(sed -n 's:.*<name>\(.*\)</name>.*:\1:p' "$xml" | head -1)"]="$(dirname "$xml")"
    done < <(find "$SRC" -maxdepth 3 -name package.xml)
    dirs=()
    for pkg in "${ROS_PY_PACKAGES[@]}"; do
      [ -f "${pkg_dir[$pkg]:-/nonexistent}/setup.py" ] || { echo "[setup] $pkg not found in $VENDOR"; exit 1; }
      dirs+=("${pkg_dir[$pkg]}")
    done
    pip_install --no-deps --no-build-isolation "${dirs[@]}"
    iface="${pkg_dir[composition_interfaces]:-}"
    [ -f "$iface/CMakeLists.txt" ] || { echo "[setup] composition_interfaces not found in $VENDOR"; exit 1; }
    (
      export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
      export PATH="$VENV/bin:$PATH"
      rm -rf "$ROOT/build/composition_interfaces"
      cmake -S "$iface" -B "$ROOT/build/composition_interfaces" -DCMAKE_INSTALL_PREFIX="$VENV" \
        -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF > "$ROOT/build/ros_vendor.log" 2>&1 \
      && cmake --build "$ROOT/build/composition_interfaces" -j2 >> "$ROOT/build/ros_vendor.log" 2>&1 \
      && cmake --install "$ROOT/build/composition_interfaces" >> "$ROOT/build/ros_vendor.log" 2>&1
    ) || { echo "[setup] composition_interfaces build failed, see build/ros_vendor.log"; tail -30 "$ROOT/build/ros_vendor.log"; exit 1; }
    # The `launch` module must be ROS's (PyPI's project of that name shadows it).
    "$VENV/bin/python" -c "import launch, launch_ros.actions, ros2cli; from launch import LaunchDescription" \
      || { echo "[setup] the installed launch/launch_ros do not import"; exit 1; }
    stamp_set rostools "$VENDOR_HASH"
  fi
elif [ -x "$VENV/bin/ros2" ]; then
  : # installed from archives by an earlier run
elif command -v ros2 > /dev/null || [ -n "${ROS_DISTRO:-}" ]; then
  # A distribution's launch/ros2 run the package built by colcon in a workspace (README "Using it on a robot").
  echo "[setup] no ROS vendor directory given: ros2 launch and the ros2 CLI are this machine's ROS 2 (${ROS_DISTRO:-$(command -v ros2)}); nothing of them installed"
else
  echo "[setup] no ROS vendor directory given and no ROS 2 install found: ros2 launch and the ros2 CLI are not installed (their tests skip)"
fi

# 6. cde_core + cde_ros themselves, editable, so the checkout is what runs.
CDE_HASH="$(hash_of setup.py pyproject.toml)"
if ! stamp_ok cde "$CDE_HASH"; then
  echo "[setup] installing cde (editable)"
  pip_install --no-deps --no-build-isolation -e "$ROOT" --config-settings editable_mode=compat
  stamp_set cde "$CDE_HASH"
fi
echo "[setup] ready: $VENV"
