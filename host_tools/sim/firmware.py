# The firmware's process on the virtual board, for both ways of running it (`earshot sim`,
# runner.py, and `earshot sim --serial`, serial_board.py): the MicroPython that runs main.py
# with the shims, in the board's heap, what the mic delivers, and what its output means.
import json
import os
import subprocess
from pathlib import Path

from host_tools.paths import micropython

SHIMS = Path(__file__).resolve().parent / "shims"
SHIM_HEAP = 256 * 1024  # room for the shims (about 50 KiB) beside the board's heap
SHORT_PRESS_S = 0.15
VERDICT_MARGIN_MS = 60  # the receiver decides DECIDE_AFTER_MS past the wake point, once that audio arrived


def write_mic_input(pcm, path):
    # What an INMP441 delivers: each sample left-justified in a 32-bit slot.
    (pcm.astype("<i4") << 16).astype("<i4").tofile(path)


def board_interpreter(heap_bytes):
    # The unix port with room for the board's heap plus the shims' own (boot.py then holds
    # the shims' spare room, so the firmware gets exactly heap_bytes).
    return [micropython(), "-X", f"heapsize={heap_bytes + SHIM_HEAP}"]


def spawn_firmware(cfg_path, heap_bytes):
    # MicroPython running main.py on the board's folder; stdout: JSON events (and any text
    # that bypassed print()). Its own session: Ctrl-C reaches the runner, which ends the
    # run in order.
    env = dict(os.environ, EARSHOT_SIM_CONFIG=str(cfg_path), MICROPYPATH=f"{SHIMS}:.frozen")
    return subprocess.Popen([*board_interpreter(heap_bytes), str(SHIMS / "boot.py")], env=env, cwd=str(SHIMS),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def firmware_event(line, t):
    # A shim's JSON event, or console text that bypassed print() (e.g. a traceback),
    # which becomes a serial event at the last known time. Returns (event, was JSON).
    if line.startswith("{"):
        try:
            return json.loads(line), True
        except ValueError:
            pass
    return {"t": t, "ev": "serial", "line": line}, False
