"""`cde bench`: measurements taken side by side in one run on one machine (see suite.run_bench)."""
