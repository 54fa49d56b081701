# neopixel on the virtual board: every write() is a trace event with the whole frame.
import _sim


class NeoPixel:
    def __init__(self, pin, n, bpp=3, timing=1):
        self.n = n
        self._px = [(0, 0, 0)] * n

    def __len__(self):
        return self.n

    def __setitem__(self, i, rgb):
        self._px[i] = rgb

    def __getitem__(self, i):
        return self._px[i]

    def fill(self, rgb):
        for i in range(self.n):
            self._px[i] = rgb

    def write(self):
        px = self._px
        blue = 0
        for r, g, b in px:
            if b >= 16 and b >= 2 * max(r, g):
                blue += 1
        _sim.lit(blue >= 1 and blue * 4 >= self.n)
        _sim.emit("led", '"rgb": [' + ", ".join("[%d, %d, %d]" % p for p in px) + "]")
