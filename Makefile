# earshot: `make demo` and `make test` set everything up themselves (a .venv here).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT := out

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The main job on the simulated board: hear the bundled recording, wake on "Hey Jarvis"
# (the receiver verifies the phrase), then push-to-talk at 9 s; stream both to a receiver
# on loopback, store the WAVs, audit the trace and draw it.
demo: setup
	rm -rf $(OUT)/demo
	$(BIN)/earshot sim --press 9.0 --board-dir $(OUT)/demo/board --recordings $(OUT)/demo/recordings \
		--trace $(OUT)/demo/trace.jsonl
	$(BIN)/earshot audit $(OUT)/demo/trace.jsonl
	$(BIN)/earshot plot $(OUT)/demo/trace.jsonl -o $(OUT)/demo/timeline.png
	@echo "recordings: $(OUT)/demo/recordings   timeline: $(OUT)/demo/timeline.png"

test: setup
	$(BIN)/python -m pytest -n 2 -q

bench: setup
	$(BIN)/python -m host_tools.bench

clean:
	rm -rf $(OUT) $(VENV) sim-board recordings
