# machine on the virtual board: the interpreter's own machine module plus I2S (reads the
# input audio at the audio clock), Pin (the scripted button), freq, reset.
import _sim
from _builtin import builtin

_machine = builtin("machine")
for _name in dir(_machine):
    if not _name.startswith("__"):
        globals()[_name] = getattr(_machine, _name)

_FRAME = 16  # I2S reads are whole numbers of 32-bit mono slots


class Pin:
    IN = 1
    OUT = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self._is_button = id == _sim.config["button_pin"]
        self._out = 0

    def value(self, v=None):
        if v is not None:
            self._out = v
            return None
        if self._is_button:
            return 0 if _sim.button_down() else 1  # active low, pulled up
        return self._out

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._out = 1

    def off(self):
        self._out = 0


class I2S:
    RX = 0
    TX = 1
    MONO = 0
    STEREO = 1

    def __init__(self, id, sck=None, ws=None, sd=None, mode=RX, bits=32, format=MONO, rate=16000, ibuf=20000):
        if mode != I2S.RX or bits != 32 or format != I2S.MONO or rate != _sim.RATE:
            raise ValueError("the virtual board's mic is 16 kHz mono, 32-bit slots, RX")
        self._ibuf_samples = ibuf // 4
        self._pos = _sim.samples  # the DMA starts capturing now
        self._f = _sim.audio
        _sim.emit("mic", '"on": true')

    def readinto(self, buf):
        n = len(buf) // 4
        late = _sim.samples - (self._pos + n)
        if late > self._ibuf_samples:  # the DMA buffer overflowed: oldest audio is lost
            self._pos += late - self._ibuf_samples
        _sim.advance_to(self._pos + n)
        _sim.wait_for_input(self._pos + n)
        got = 0
        if self._f is None:
            raise OSError("I2S is deinitialised")
        if self._pos < _sim.input_samples:
            self._f.seek(self._pos * 4)
            got = self._f.readinto(buf) or 0
        for i in range(got, len(buf)):
            buf[i] = 0  # after the input: silence
        self._pos += n
        return len(buf)

    def deinit(self):
        if self._f is not None:
            self._f = None
            _sim.emit("mic", '"on": false')

    @staticmethod
    def shift(buf=None, bits=32, shift=0):
        raise NotImplementedError("I2S.shift is not simulated")


def freq(hz=None):
    return 240_000_000 if hz is None else None


def reset():
    # A soft reset: the host restarts the board as after a power cycle.
    _sim.emit("reset", '"soft": true')
    raise SystemExit(3)


class WDT:
    def __init__(self, id=0, timeout=5000):
        pass

    def feed(self):
        pass
