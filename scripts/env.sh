# Source me: the environment every cde test, demo and benchmark runs in (ENVIRONMENT.md).
# DDS stays on this machine; each run gets its own domain unless one is given; no hub; one thread.
_CDE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CDE_ROOT="$_CDE_ROOT"
export CDE_VENV="${CDE_VENV:-$_CDE_ROOT/.venv}"
export PATH="$CDE_VENV/bin:$PATH"
export PYTHONPATH="$_CDE_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export AMENT_PREFIX_PATH="$CDE_VENV"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 200) + 10 ))}"
export HF_HUB_OFFLINE=1
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export OMP_WAIT_POLICY=PASSIVE
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
export MPLBACKEND=Agg
# Raw camera frames between processes: shared memory with a large segment (default transports drop most
# frames above ~250 KB here; config/fastdds_large_images.xml says why). Only read by rmw_fastrtps.
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_CDE_ROOT/config/fastdds_large_images.xml}"
