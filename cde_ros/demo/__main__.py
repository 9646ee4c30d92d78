"""`python -m cde_ros.demo`: the demo orchestrator (see cde_ros/demo/orchestrator.py)."""
import sys

from cde_ros.demo.orchestrator import main

sys.exit(main())
