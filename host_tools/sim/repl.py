# The virtual board's REPL on its UART, as MicroPython's shared/runtime/pyexec.c speaks it:
# the friendly REPL (">>> ", echo, Ctrl-C, Ctrl-D soft reboot), the raw REPL that mpremote
# drives (Ctrl-A, "OK", output \x04 traceback \x04 ">") and raw paste (\x05A\x01, a window
# of bytes acknowledged with \x01). The code runs in a MicroPython process
# (shims/repl.py) whose globals last until the next soft reset.
import os
import signal
import struct
import subprocess

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_WINDOW = 256  # bytes the host may send before the board acknowledges them
SOFT_REBOOT = b"MPY: soft reboot\r\n"
HARD_RESET, SOFT_RESET = 3, 4  # the REPL process's exit status for machine.reset() / soft_reset()
_CTRL_A, _CTRL_B, _CTRL_C, _CTRL_D, _CTRL_E = 1, 2, 3, 4, 5
_BACKSPACE = (8, 127)


class Repl:
    """One REPL session. feed() takes UART bytes; output goes to write(bytes). feed() and
    control() return what the board must do: "soft_reset" (Ctrl-D at the friendly prompt:
    reboot and run main.py) or "soft_reset_raw" (Ctrl-D on an empty raw REPL line: reboot
    into the raw REPL), else None."""

    def __init__(self, command, env, write, banner):
        self._command = command  # how to start shims/repl.py
        self._env = env
        self._write = write
        self._banner = banner
        self.proc = None
        self.mode = "friendly"
        self._line = bytearray()
        self._block = []  # friendly: the lines of a compound statement so far
        self._paste_unacked = 0
        self.busy = False
        self._starting = False  # busy until the process says "ready"
        self._pending = bytearray()  # bytes that came while code ran

    def start(self, raw=False):
        # The prompt comes once boot.py has run (it may print), as on a board; what is
        # typed meanwhile waits.
        self._spawn()
        self.mode = "raw" if raw else "friendly"
        self.busy = self._starting = True

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                f.close()
            self.proc = None

    def feed(self, data):
        if self.busy:
            if _CTRL_C in data and not self._starting:  # interrupt the running code
                self.proc.send_signal(signal.SIGINT)
            self._pending += data.replace(b"\x03", b"")
            return None
        for i, c in enumerate(data):
            action = getattr(self, "_" + self.mode)(c)
            if action:
                return action
            if self.busy:
                self._pending += data[i + 1:]
                return None
        return None

    def output(self, data):
        # What the code printed: the board's stdout translates newlines ("cooked").
        self._write(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))

    def control(self, line):
        # A line on the process's stderr: "ready" (boot.py has run) or "done" (the code ended).
        word = line.strip()
        if word == b"ready":
            self._write(RAW_BANNER + b">" if self.mode == "raw" else self._banner + b">>> ")
        elif word == b"done":
            self._write(b">>> " if self.mode == "friendly" else b">")
        else:
            return None
        self.busy = self._starting = False
        pending, self._pending = bytes(self._pending), bytearray()
        return self.feed(pending) if pending else None

    def _friendly(self, c):
        if c == _CTRL_A:
            self.mode, self._line, self._block = "raw", bytearray(), []
            self._write(b"\r\n" + RAW_BANNER + b">")
        elif c == _CTRL_B:
            self._line, self._block = bytearray(), []
            self._write(b"\r\n" + self._banner + b">>> ")
        elif c == _CTRL_C:
            self._line, self._block = bytearray(), []
            self._write(b"\r\n>>> ")
        elif c == _CTRL_D and not self._line:
            self._write(b"\r\n")
            return "soft_reset"
        elif c == ord("\r"):
            self._write(b"\r\n")
            self._enter_line()
        elif c in _BACKSPACE:
            if self._line:
                self._line.pop()
                self._write(b"\x08 \x08")
        elif c >= 32:
            self._line.append(c)
            self._write(bytes([c]))
        return None

    def _enter_line(self):
        line, self._line = bytes(self._line), bytearray()
        if self._block or line.rstrip().endswith(b":"):
            if line.strip():
                self._block.append(line)
                self._write(b"... ")
                return
            line, self._block = b"\n".join(self._block) + b"\n", []
        if line.strip():
            self._run("single", line)
        else:
            self._write(b">>> ")

    def _raw(self, c):
        if c == _CTRL_A:
            if len(self._line) == 2 and self._line[0] == _CTRL_E:
                self._line = bytearray()
                self.mode, self._paste_unacked = "paste", 0
                self._write(b"R\x01" + struct.pack("<H", PASTE_WINDOW) + b"\x01")
            else:
                self._line = bytearray()
                self._write(b"\r\n" + RAW_BANNER + b">")
        elif c == _CTRL_B:
            self.mode, self._line = "friendly", bytearray()
            self._write(b"\r\n" + self._banner + b">>> ")
        elif c == _CTRL_C:
            self._line = bytearray()
        elif c == _CTRL_D:
            self._write(b"OK")
            if not self._line:
                self._write(b"\r\n")
                return "soft_reset_raw"
            else:
                self._run("raw", bytes(self._line))
                self._line = bytearray()
        else:
            self._line.append(c)
        return None

    def _paste(self, c):
        if c == _CTRL_D:
            self.mode = "raw"
            self._write(b"\x04")
            self._run("raw", bytes(self._line))
            self._line = bytearray()
            return None
        self._line.append(c)
        self._paste_unacked += 1
        if self._paste_unacked == PASTE_WINDOW:
            self._paste_unacked = 0
            self._write(b"\x01")
        return None

    def _run(self, mode, code):
        self.busy = True
        try:
            self.proc.stdin.write(b"%s %d\n" % (mode.encode(), len(code)) + code)
            self.proc.stdin.flush()
        except OSError:  # the process ended (a reset): the caller sees it exit
            pass

    def _spawn(self):
        self.proc = subprocess.Popen(self._command, env=dict(self._env), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stderr.fileno(), False)
