# Entry point of the virtual board inside MicroPython: load the shims, make the board's
# folder the root filesystem, route the console into the trace, then run main.py as the
# board's runtime would.
import builtins
import os
import sys

import _asyncio_task
import _sim
import asyncio.core
import machine  # noqa: F401 (shims must load before the root changes)
import neopixel  # noqa: F401
import network  # noqa: F401
import select  # noqa: F401
import socket  # noqa: F401
import ssl  # noqa: F401
import time  # noqa: F401
import vfs

_asyncio_task.core = asyncio.core
_open = builtins.open


class _WriteCounter:
    # A file opened for writing on the board: its size is a trace event when it closes.
    def __init__(self, path, f):
        self._path = path
        self._f = f
        self._bytes = 0

    def write(self, data):
        n = self._f.write(data)
        self._bytes += n
        return n

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            _sim.emit("fs", '"path": "%s", "bytes": %d' % (self._path, self._bytes))

    def flush(self):
        self._f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _traced_open(path, mode="r", *args, **kw):
    f = _open(path, mode, *args, **kw)
    if "w" in mode or "a" in mode or "+" in mode:
        return _WriteCounter(path, f)
    return f


builtins.print = _sim.console
builtins.open = _traced_open

if _sim.config["power_on"]:
    _sim.emit("power", '"on": true')
vfs.umount("/")
vfs.mount(vfs.VfsPosix(_sim.config["board_dir"]), "/")
os.chdir("/")
sys.path[:] = ["", "/lib", ".frozen"]

import gc  # noqa: E402

gc.collect()
_sim.hold_spare_heap()  # the firmware gets the board's heap, no more
_sim.heap_baseline = gc.mem_alloc()
import main  # noqa: E402,F401  (runs the firmware)
