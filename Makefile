# Two commands on a fresh machine with Python 3.11:
#   make demo   -- create .venv, install caffe2lite (the runtime only), run the main example
#   make test   -- create .venv, install caffe2lite[test], run the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# Rebuilt when the packaging or the C kernels change (pip install -e compiles them).
SOURCES := pyproject.toml setup.py $(wildcard caffe2lite/_native/*.c caffe2lite/_native/*.h)

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The runtime alone (NumPy, protobuf, tqdm, threadpoolctl): all the demo needs.
$(VENV)/.runtime: $(SOURCES) | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

# The runtime and the test extras (pytest, hypothesis, Ray, grpcio-tools).
$(VENV)/.installed: $(SOURCES) | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(PY) examples/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) tools/bench_dispatch.py
	$(PY) tools/bench_main_job.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
