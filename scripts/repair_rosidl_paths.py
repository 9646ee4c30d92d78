"""Point the ROS wheels' CMake exports at this venv's Python and NumPy include directories.

The Kilted wheels were built in a manylinux container and 12 `export_*__rosidl_generator_pyExport.cmake`
files hard-code that container's include paths; CMake then refuses the imported targets
("includes non-existent path"). Idempotent: rerun after any pip install of ros-* wheels.
"""
from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

_FOREIGN_PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
_FOREIGN_NUMPY_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/[\w/]*include")


def repair(prefix: Path) -> int:
    """Rewrite foreign include paths under `prefix/share`; return how many files changed."""
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = 0
    for path in prefix.glob("share/*/cmake/export_*__rosidl_generator_pyExport.cmake"):
        text = path.read_text()
        fixed = _FOREIGN_NUMPY_INCLUDE.sub(numpy_include, text)
        fixed = _FOREIGN_PYTHON_INCLUDE.sub(python_include, fixed)
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    return changed


if __name__ == "__main__":
    n = repair(Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix))
    if n:
        print(f"[setup] repaired include paths in {n} rosidl export files")
