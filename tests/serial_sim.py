# The virtual board on a serial port (`earshot sim --serial`) for tests: started as the
# user starts it, in its own process, and stopped with SIGTERM as a script would.
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from esp_image import make_micropython_image

EARSHOT = str(Path(sys.executable).parent / "earshot")
BIN = Path(sys.executable).parent
BOOTLOADER_OFFSET = 0x1000
FLASH_SIZE = 4 << 20


class SerialSim:
    def __init__(self, tmp_path, serial="tcp:127.0.0.1:0", flashed=True):
        self.trace = tmp_path / "trace.jsonl"
        self.board_dir = tmp_path / "board"
        self.flash = tmp_path / "board.flash"
        if flashed:  # as if `earshot flash` had run: tests of the REPL need not wait for esptool
            image = make_micropython_image(tmp_path / "micropython.bin")
            blank = bytearray(b"\xff" * FLASH_SIZE)
            data = image.read_bytes()
            blank[BOOTLOADER_OFFSET:BOOTLOADER_OFFSET + len(data)] = data
            self.flash.write_bytes(bytes(blank))
        self.proc = subprocess.Popen([EARSHOT, "sim", "--serial", serial, "--board-dir", str(self.board_dir),
                                      "--flash-image", str(self.flash), "--trace", str(self.trace), "--no-live"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        first = self.proc.stdout.readline()
        m = re.search(r"on serial port (\S+);", first)
        assert m, first + self.proc.stdout.read()
        self.url = m.group(1)
        self.output = [first]
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self):
        for line in self.proc.stdout:
            self.output.append(line)

    def type(self, line):
        # What the person at the desk types: p (press), r (reset), ...
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return "".join(self.output)


def tool(name, *args, env=None, timeout=60):
    # Runs one of the installed tools (esptool, mpremote, earshot) -> CompletedProcess (text).
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL,
                          env=dict(os.environ, **(env or {})))


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + (what() if callable(what) else what))
