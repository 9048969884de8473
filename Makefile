# clara-stream: the README's commands. Each target sets up .venv itself (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install when the dependency declarations change.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | sha1sum | cut -c1-12)
# Debian packages the tests and demo use: DICOM peers, PACS, SEG validator, browser, graph drawing, TTS,
# ffmpeg/ffprobe (independent producer and oracle of the video tests).
APT_PACKAGES := dcmtk orthanc dicom3tools chromium graphviz espeak-ng sox ffmpeg rtsp-server-perl rabbitmq-server postgresql
DEMO_OUT ?= demo-output

.PHONY: demo test bench venv apt lint clean

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The pinned CPU torch first: an unpinned torch (pulled by monai) resolves to a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	# Only for its tritonserver binary; its numpy<2 pin would break the stack, hence --no-deps.
	$(BIN)/pip install -q --no-deps nvidia-pytriton==0.7.0
	# The Triton Python-backend stub misreads numpy 2 arrays: it gets its own numpy<2 site.
	$(BIN)/python -c "from clara_stream.inference.triton_server import ensure_stub_site; ensure_stub_site()"
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: venv apt
	$(BIN)/python -m clara_stream.demo --out $(DEMO_OUT)

test: venv apt
	$(BIN)/python -m pytest -q

bench: venv apt
	$(BIN)/python benchmarks/run_all.py

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build dist *.egg-info $(DEMO_OUT)
