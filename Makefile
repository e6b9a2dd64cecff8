# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml setup.py requirements-torch.txt sampler_ext/_sampler.pyx sampler_ext/gt_support.h
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-torch.txt
	$(PY) -m pip install -q -e '.[workloads,report,test]'
	touch $@

PATH_HINT = @echo "greentop and python -m workloads are in $(VENV)/bin; put them on your PATH with: . $(VENV)/bin/activate"

setup: $(VENV)/.installed
	$(PATH_HINT)

demo: setup
	$(VENV)/bin/greentop devices --watch 0.5
	$(VENV)/bin/greentop run -o demo.h5 --force --baseline 2 -- $(PY) -m workloads demo
	$(PATH_HINT)

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/bench_sampler.py

clean:
	rm -rf $(VENV) build greentop/*.so sampler_ext/_sampler.c *.egg-info
