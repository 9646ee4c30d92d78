"""The demo, apart from the product: a simulated Meta-World robot (`robot_node`) and the orchestrator
that runs it against the perception node over DDS and scores the verdicts (`orchestrator`).

Nothing in `cde_ros` outside this subpackage imports it; a robot runs the perception node only.
"""
