# Two commands do everything on a fresh machine (Python 3.10-3.13 from pyenv or the system):
#   make demo   train a tiny model with real Axolotl on CPU, tracked by SwanLab, and show the run
#   make test   the whole test suite (fast lane on 3.10-3.13, real-Axolotl lane, benchmark smoke)
# BUSY=2 make test (or test-e2e, test-fast) runs two CPU-bound processes beside the lanes the
# whole time: the suite must pass on a busy machine too (scripts/test.sh --busy).
.PHONY: demo test test-fast test-e2e bench envs clean

demo:
	scripts/demo.sh

test:
	scripts/test.sh all

test-fast:
	scripts/test.sh fast

test-e2e:
	scripts/test.sh e2e

bench:
	$$(python3 tools/venvs.py path fast-py3.11)/bin/python benchmarks/run.py

envs:
	python3 tools/venvs.py list

clean:
	rm -rf build dist .work
