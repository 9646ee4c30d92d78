# The two commands of the README. Each sets up what it needs (idempotent) before it runs.
.PHONY: demo test setup colcon-check clean

# ROS 2 launch and the ros2 CLI from upstream source archives beside the checkout (CI: a read-only shared/
# next to the clone; ../shared/vendor/ros2/README.md): scripts/setup_env.sh installs them when this names
# a directory. Empty when there is none (then a real ROS 2 install, if any, provides them). Set it to
# override, e.g. `make test CDE_ROS_VENDOR_DIR=/path/to/archives`.
ifeq ($(origin CDE_ROS_VENDOR_DIR),undefined)
CDE_ROS_VENDOR_DIR := $(abspath $(wildcard $(dir $(abspath $(lastword $(MAKEFILE_LIST))))../shared/vendor/ros2))
endif
export CDE_ROS_VENDOR_DIR

demo:
	./scripts/demo.sh

test:
	./scripts/run_tests.sh

setup:
	./scripts/setup_env.sh

clean:
	rm -rf build runs .pytest_cache
