# The two set-up commands of the README: `make demo` (capture + summary of a bundled example) and
# `make test` (everything the tests need, then the tests). Both install what they need first.
PY ?= python3
PIP_INSTALL = $(PY) -m pip install -q --disable-pip-version-check --root-user-action=ignore

.PHONY: install system-deps demo test test-unit lint bench bench-smoke

install:
	$(PIP_INSTALL) -e '.[test]'

demo: install
	rm -rf out/demo-trace
	$(PY) -m trainio.tracer capture --out out/demo-trace -- $(PY) examples/imagenet_jpeg.py --device cpu --epochs 2
	$(PY) -m trainio.tracer summary out/demo-trace
	$(PY) -m trainio.replay what-if --trace out/demo-trace --backend as-captured
	$(PY) -m trainio.replay what-if --trace out/demo-trace --nodes 16 --backend rgw

system-deps:
	scripts/install-system-deps.sh

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy trainio

test: lint system-deps
	$(PY) -m pytest -q

# The fast half alone: no root, no apt, no Ceph, no subprocesses; seconds.
test-unit: install
	$(PY) -m pytest -q tests/unit

bench: install
	$(PY) bench/overhead.py
	$(PY) bench/whatif_speed.py
	$(PY) bench/replay_fidelity.py
	$(PY) bench/emulate_vs_real.py
	$(PY) bench/accuracy.py
	$(PY) bench/sweep_speed.py

bench-smoke: install system-deps
	$(PY) bench/overhead.py --smoke --out out/bench-smoke/overhead.json
	$(PY) bench/interposer_cost.py --smoke --out out/bench-smoke/interposer_cost.json
	$(PY) bench/whatif_speed.py --smoke --out out/bench-smoke/whatif.json
	$(PY) bench/replay_fidelity.py --smoke --out out/bench-smoke/replay_fidelity.json
	$(PY) bench/emulate_vs_real.py --smoke --out out/bench-smoke/emulate.json
	$(PY) bench/accuracy.py --smoke --out out/bench-smoke/accuracy.json
	$(PY) bench/gpu_accuracy.py project tests/data/gpu-standin --out out/bench-smoke/gpu_accuracy.json
	$(PY) bench/sweep_speed.py --smoke --out out/bench-smoke/sweep.json
