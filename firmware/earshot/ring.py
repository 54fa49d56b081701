# What the WS2812 ring shows, per DESIGN.md "Ring semantics":
#   listening (audio is leaving): blue, every pixel blue-dominant, one brighter pixel spins
#   muted: red; problem (no Wi-Fi, receiver unreachable): amber; idle: dark; boot: dim white.
# Brightness scales every pattern, but never below _MIN_LEVEL (and the listening blue
# never below _MIN_BLUE), so a camera still tells the patterns apart: listening needs
# blue >= 2 x max(red, green) and >= 16 on every pixel.
from micropython import const

DARK = const(0)
BOOT = const(1)
LISTENING = const(2)
MUTED = const(3)
PROBLEM = const(4)

_MIN_BLUE = const(32)
_MIN_LEVEL = const(16)


class Ring:
    def __init__(self, np, brightness):
        self._np = np
        self._n = len(np)
        self._level = max(_MIN_LEVEL, brightness)
        self.pattern = None
        self._phase = 0

    def show(self, pattern):
        # Writes the pattern at once; callers rely on this for "lit before sent".
        self.pattern = pattern
        self._phase = 0
        self._paint()

    def tick(self):
        # Advances the listening spinner; other patterns are static and not rewritten.
        if self.pattern == LISTENING:
            self._phase = (self._phase + 1) % self._n
            self._paint()

    def _paint(self):
        np = self._np
        b = self._level
        p = self.pattern
        for i in range(self._n):
            if p == LISTENING:
                base = max(_MIN_BLUE, b)
                np[i] = (base // 4, base // 4, min(255, base * 2)) if i == self._phase else (0, 0, base)
            elif p == MUTED:
                np[i] = (b, 0, 0)
            elif p == PROBLEM:
                np[i] = (b, b * 2 // 5, 0)
            elif p == BOOT:
                np[i] = (b // 4, b // 4, b // 4) if i % 2 == 0 else (0, 0, 0)
            else:
                np[i] = (0, 0, 0)
        np.write()
