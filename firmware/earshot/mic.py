# The audio path: I2S slots -> 16-bit PCM in a ring of frames that is both the pre-roll
# (about 1 s, continuously overwritten, RAM only) and the drop-oldest send queue.
# Nothing here allocates per frame: buffers are made once, the conversion is viper.
import array

import micropython
from micropython import const

FRAME_SAMPLES = const(320)  # 20 ms at 16 kHz
FRAME_BYTES = const(640)  # 16-bit mono PCM
FRAME_MS = const(20)
_SLOT_BYTES = const(4)  # INMP441: 24-bit sample left-justified in a 32-bit slot

# Conversion state, one int32 each (viper functions take few arguments).
_GAIN = const(0)  # Q6 gain: 64 = 0 dB
_DC_ON = const(1)
_DC_ACC = const(2)  # DC estimate, Q8 of the 20-bit sample, stored + _BIAS
_DST = const(3)  # where the frame goes in the destination, in samples
# Stored biased so it is never negative: a 32-bit viper load sign-extends on the ESP32
# but zero-extends on the 64-bit unix port, and a non-negative word reads the same on both.
_BIAS = const(0x20000000)


@micropython.viper
def _convert(src, dst, n: int, state) -> int:
    # 32-bit slots -> s16 PCM with DC removal and gain; returns the sum of |sample|.
    # Sample maths stays within +/-2**30: 20-bit sample x Q6 gain <= 640 (+20 dB).
    s = ptr32(src)
    st = ptr32(state)
    d = ptr16(dst)
    base = int(st[_DST])
    gain = st[_GAIN]
    dc_on = st[_DC_ON]
    acc = int(st[_DC_ACC]) - _BIAS
    total = 0
    i = 0
    while i < n:
        x = int(uint(s[i]) >> 12)  # top 20 bits: the 16-bit sample x 16, plus 4 more
        if x & 0x80000:
            x -= 0x100000
        if dc_on:
            acc += ((x << 8) - acc) >> 10  # one-pole DC tracker, ~2.5 Hz at 16 kHz
            x -= acc >> 8
        y = (x * gain) >> 10
        if y > 32767:
            y = 32767
        elif y < -32768:
            y = -32768
        d[base + i] = y
        total += y if y >= 0 else -y
        i += 1
    st[_DC_ACC] = acc + _BIAS
    return total


def gain_q6(gain_db):
    # 10**(dB/20) in Q6, by integer steps of 1 dB (no floats on the board's hot path).
    g = 64 << 8  # Q14 intermediate for precision
    step_up, step_down = 18383, 14602  # 10**(1/20) and 10**(-1/20) in Q14
    for _ in range(abs(gain_db)):
        g = (g * (step_up if gain_db > 0 else step_down)) >> 14
    return (g + 128) >> 8


@micropython.viper
def _copy_frame(dst, dst_at: int, src, src_at: int):
    d = ptr32(dst)
    s = ptr32(src)
    di = dst_at >> 2
    si = src_at >> 2
    end = si + FRAME_BYTES // 4
    while si < end:
        d[di] = s[si]
        di += 1
        si += 1


class FrameRing:
    # N frames of PCM in one buffer; `written` counts frames since the mic started.
    # Frame k lives at offset(k) until frame k + N overwrites it. (Offsets rather than
    # per-frame memoryviews: those would cost RAM the pre-roll needs.)
    def __init__(self, frames):
        self.count = frames
        self.buf = bytearray(frames * FRAME_BYTES)
        self.written = 0

    def offset(self, k):
        return (k % self.count) * FRAME_BYTES

    def copy_out(self, k, dst, dst_at):
        # Copies frame k into dst at byte offset dst_at (which must be 4-byte aligned).
        _copy_frame(dst, dst_at, self.buf, self.offset(k))

    def oldest(self):
        # The oldest frame still held intact (the slot of `written` is written next).
        return self.written - self.count + 1 if self.written >= self.count else 0

    def reset(self):
        self.written = 0


class Mic:
    def __init__(self, open_i2s, ring, gain_db, dc_removal):
        self._open_i2s = open_i2s
        self._i2s = None
        self.ring = ring
        self._raw = bytearray(FRAME_SAMPLES * _SLOT_BYTES)
        self._state = array.array("i", [gain_q6(gain_db), 1 if dc_removal else 0, _BIAS, 0])
        self.level = 0  # mean |sample| of the last frame, for the end-of-speech detector

    @property
    def on(self):
        return self._i2s is not None

    def start(self):
        if self._i2s is None:
            self._i2s = self._open_i2s(FRAME_BYTES * 2)
            self._state[_DC_ACC] = _BIAS
            self.ring.reset()

    def stop(self):
        # Deinit stops the I2S clock: the mic is physically off.
        if self._i2s is not None:
            self._i2s.deinit()
            self._i2s = None

    def capture(self):
        # Blocks for one frame (the DMA paces it) and converts it into the ring; returns
        # the frame's byte offset in ring.buf. Raises OSError on a short I2S read.
        n = self._i2s.readinto(self._raw)
        if n != FRAME_SAMPLES * _SLOT_BYTES:
            raise OSError("short I2S read")
        ring = self.ring
        at = ring.offset(ring.written)
        self._state[_DST] = at // 2
        self.level = _convert(self._raw, ring.buf, FRAME_SAMPLES, self._state) // FRAME_SAMPLES
        ring.written += 1
        return at
