# What a person watching the simulator sees: the board's console lines as they come and,
# on a terminal, a live ring line (real colours) with the state, time and bytes sent.
import re
import sys
import time

_STATE = re.compile(r"^I app state old=\S+ new=(\S+)")


class Console:
    def __init__(self, out=None, live=None):
        self._out = out = out or sys.stdout
        self._live = out.isatty() if live is None else live
        self.state = "boot"
        self.rgb = []
        self.t = 0.0
        self.sent = 0
        self._drawn = 0.0

    def event(self, ev):
        kind = ev["ev"]
        self.t = ev["t"]
        if kind == "led":
            self.rgb = ev["rgb"]
        elif kind == "net" and ev["dir"] == "out":
            self.sent += ev["bytes"]
        elif kind == "serial":
            m = _STATE.match(ev["line"])
            if m:
                self.state = m.group(1)
            self.line(f"[{ev['t']:9.3f}] {ev['line']}")
            return
        elif kind == "heap":
            self.line(f"[{ev['t']:9.3f}] -- heap: firmware uses {ev['firmware_bytes']} bytes, {ev['free_bytes']} free")
            return
        elif kind in ("power", "button"):
            what = "power " + ("on" if ev["on"] else "cut") if kind == "power" else \
                "button " + ("pressed" if ev["pressed"] else "released")
            self.line(f"[{ev['t']:9.3f}] -- {what}")
            return
        if self._live and time.monotonic() - self._drawn > 0.05:
            self._draw()

    def line(self, text):
        if self._live:
            self._out.write("\r\x1b[K")
        self._out.write(text + "\n")
        if self._live:
            self._draw()
        self._out.flush()

    def _draw(self):
        self._drawn = time.monotonic()
        dots = "".join(f"\x1b[38;2;{_lift(r)};{_lift(g)};{_lift(b)}m\u25cf" for r, g, b in self.rgb)
        self._out.write(f"\r\x1b[K  ring {dots}\x1b[0m  {self.state:<9} t={self.t:8.2f}s  sent={self.sent / 1024:8.1f} KiB")
        self._out.flush()

    def close(self):
        if self._live:
            self._out.write("\r\x1b[K")
            self._out.flush()


def _lift(c):
    # LEDs look brighter than their numbers: lift dim values so a terminal shows them.
    return 0 if c == 0 else min(255, 60 + c * 3)
