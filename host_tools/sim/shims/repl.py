# The virtual board's REPL interpreter (`earshot sim --serial`): runs the code the host's
# REPL (host_tools/sim/repl.py) hands it, with the board's folder as the root filesystem
# and one set of globals until the next soft reset, as on a board.
#
# From the host, on stdin: "<mode> <length>\n<code>" with mode "raw" (raw REPL: output,
# \x04, traceback, \x04 as MicroPython's pyexec frames it), "single" (a typed line: echo
# the value of an expression) or "file" (boot.py). To the host: stdout is what the board
# prints on its UART; stderr carries "ready" and "done" lines. machine.reset() ends the
# process with status 3, machine.soft_reset() with 4.
import sys

sys.path[:] = [".frozen"]  # the interpreter's own modules, not the firmware's shims beside this file
import io  # noqa: E402
import machine as _builtin_machine  # noqa: E402
import os  # noqa: E402
import vfs  # noqa: E402

_HARD_RESET = 3
_SOFT_RESET = 4
_out = sys.stdout.buffer


_BLOCK = 4096  # LittleFS on the ESP32's flash: 4 KiB blocks
_FS_BLOCKS = 512  # MicroPython's 4 MiB layout leaves 2 MiB for the filesystem


class _Os:
    # The board's os, as a real ESP32's: ilistdir entries carry the file size (VfsPosix's
    # have three fields), so `mpremote fs ls` shows sizes; statvfs reports a 2 MiB
    # filesystem, each file taking whole blocks, not the host's disk.
    def __getattr__(self, name):
        return getattr(os, name)

    def ilistdir(self, path=""):
        base = path.rstrip("/") + "/" if path else ""
        for entry in os.ilistdir(path or "."):
            yield entry + (os.stat(base + entry[0])[6],)

    def statvfs(self, path="/"):
        free = max(0, _FS_BLOCKS - _blocks_used("/"))
        return (_BLOCK, _BLOCK, _FS_BLOCKS, free, free, 0, 0, 0, 0, 255)


def _blocks_used(folder):
    used = 1  # the directory itself
    for name, kind, *_ in os.ilistdir(folder):
        path = folder.rstrip("/") + "/" + name
        used += _blocks_used(path) if kind == 0x4000 else (os.stat(path)[6] + _BLOCK - 1) // _BLOCK or 1
    return used


class _Machine:
    # What a board's machine module does to the session: resets end this process.
    def __getattr__(self, name):
        return getattr(_builtin_machine, name)

    def reset(self):
        sys.exit(_HARD_RESET)

    def soft_reset(self):
        sys.exit(_SOFT_RESET)

    def freq(self, hz=None):
        return 240_000_000 if hz is None else None  # the virtual board is a 240 MHz ESP32


vfs.umount("/")
vfs.mount(vfs.VfsPosix(os.getenv("EARSHOT_BOARD_DIR")), "/")
os.chdir("/")
sys.path[:] = ["", "/lib", ".frozen"]
sys.modules["os"] = _Os()
sys.modules["machine"] = _Machine()
_globals = {"__name__": "__main__"}


def _traceback(e):
    # The traceback as the board prints it: the frames of the user's code only.
    buf = io.StringIO()
    sys.print_exception(e, buf)
    lines = [ln for ln in buf.getvalue().split("\n") if "repl.py" not in ln]
    return "\n".join(lines)


def _run(mode, code):
    try:
        exec(compile(code, "boot.py" if mode == "file" else "<stdin>", "single" if mode == "single" else "exec"),
             _globals)
        err = ""
    except SystemExit as e:
        if e.value in (_HARD_RESET, _SOFT_RESET):
            raise
        err = ""
    except BaseException as e:  # noqa: B036 (KeyboardInterrupt included: the board prints it too)
        err = _traceback(e)
    if mode == "raw":
        _out.write(b"\x04" + err.encode() + b"\x04")
    elif err:
        _out.write(err.encode())


def main():
    if "boot.py" in os.listdir("/"):
        with open("/boot.py") as f:
            _run("file", f.read())
    sys.stderr.write("ready\n")
    stdin = sys.stdin.buffer
    while True:
        try:
            header = stdin.readline()
        except KeyboardInterrupt:  # a Ctrl-C that came just after the code ended
            continue
        if not header:
            return
        mode, length = header.decode().split()
        _run(mode, stdin.read(int(length)).decode())
        sys.stderr.write("done\n")


main()
