# The two commands of the README. Each sets up what it needs (idempotent) before it runs.
.PHONY: demo test setup colcon-check clean

demo:
	./scripts/demo.sh

test:
	./scripts/run_tests.sh

setup:
	./scripts/setup_env.sh

clean:
	rm -rf build runs .pytest_cache
