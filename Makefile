# Two commands on a fresh machine with Python 3.11:
#   make demo   -- create .venv, install caffe2lite, run the main example
#   make test   -- create .venv, install caffe2lite[test], run the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Rebuilt when the packaging or the C kernels change (pip install -e compiles them).
$(VENV)/.installed: pyproject.toml setup.py $(wildcard caffe2lite/_native/*.c caffe2lite/_native/*.h) | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) tools/bench_dispatch.py
	$(PY) tools/bench_main_job.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
