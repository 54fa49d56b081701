# Shared test helpers. Firmware code runs under the real MicroPython interpreter (the
# pinned unix port), never only under CPython.
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.paths import FIRMWARE

MICROPYTHON = str(Path(sys.executable).parent / "micropython")


def pytest_addoption(parser):
    # Real-hardware tests opt in (tests/test_hardware.py), as esptool's own test suite does.
    parser.addoption("--port", help="a real ESP32 dev board's serial port: run the hardware smoke test on it")
    parser.addoption("--firmware", help="with --port: the MicroPython .bin to flash (default: fetch --micropython)")
    parser.addoption("--micropython", default="v1.28.0", help="with --port: the MicroPython release to fetch")


def run_micropython(code, cwd=None, timeout=60):
    """Runs `code` under MicroPython with firmware/ importable; returns its stdout.

    Fails the test with the interpreter's output if it exits non-zero."""
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    proc = subprocess.run([MICROPYTHON, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"MicroPython exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith(("{", "["))]


def need(program):
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (apt-get install {program}); .ci/run installs it")


@pytest.fixture
def mpy():
    return run_micropython


@pytest.fixture
def earshot(capsys):
    # Runs `earshot ARGS...` in-process -> (exit status, stdout, stderr).
    from host_tools import cli

    def run(*args):
        status = cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture(scope="session", autouse=True)
def private_config_home(tmp_path_factory):
    # `earshot receive` / `pair` keep their keys under $XDG_CONFIG_HOME by default: tests
    # never touch the real one.
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old


@pytest.fixture
def board(tmp_path):
    # A flashed virtual board on a TCP serial port (`earshot sim --serial`), stopped after
    # the test. (test_flash.py has its own: the ROM alone.)
    from serial_sim import SerialSim

    sim = SerialSim(tmp_path)
    yield sim
    sim.stop()
