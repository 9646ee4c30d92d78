"""ROS 2 side of cde: the perception node, frame buffering, command events and recording.

The generated message modules (`cde_ros.msg`) may be installed in another directory than these
hand-written modules (the dev venv installs them into site-packages, the code stays in the checkout);
extending `__path__` lets both halves import as one package, whichever is found first.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
