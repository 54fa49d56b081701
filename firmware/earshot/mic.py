# The audio path: I2S slots -> 16-bit PCM (the frame the detector and the end of speech
# hear) and, beside it, the same frame as G.711 u-law in a ring of frames that is both the
# pre-roll (about 1 s, continuously overwritten, RAM only) and the drop-oldest send queue.
# u-law (8 bits a sample, the telephone standard's companding, about 13 bits of dynamic
# range) halves the ring, the firmware's largest buffer, so that the board fits a classic
# ESP32's heap; what leaves the board is decoded back to 16-bit PCM.
# Nothing here allocates per frame: buffers are made once, the conversion is viper.
import array

import micropython
from micropython import const

FRAME_SAMPLES = const(320)  # 20 ms at 16 kHz
FRAME_BYTES = const(640)  # 16-bit mono PCM, as a frame leaves the board
FRAME_MS = const(20)
_SLOT_BYTES = const(4)  # INMP441: 24-bit sample left-justified in a 32-bit slot
_STORED_BYTES = const(320)  # a frame in the ring: one u-law byte a sample

# Conversion state, one int32 each (viper functions take few arguments).
_GAIN = const(0)  # Q6 gain: 64 = 0 dB
_DC_ON = const(1)
_DC_ACC = const(2)  # DC estimate, Q8 of the 20-bit sample, stored + _BIAS
_DST = const(3)  # where the frame goes in the ring, in bytes
# Stored biased so it is never negative: a 32-bit viper load sign-extends on the ESP32
# but zero-extends on the 64-bit unix port, and a non-negative word reads the same on both.
_BIAS = const(0x20000000)

# G.711 u-law (ITU-T G.711 as in Sun's reference g711.c): magnitude clipped at 32635,
# + 132, segment = position of its top bit - 7, 4 bits of mantissa, all bits inverted.
_ULAW_CLIP = const(32635)
_ULAW_BIAS = const(132)


def _segments():
    # segment of (magnitude + 132) >> 7, for 1..255: bit length - 1, at most 7
    t = bytearray(256)
    for v in range(1, 256):
        t[v] = min(7, len(bin(v)) - 3)
    return bytes(t)


def _decoded():
    # u-law byte -> 16-bit PCM, little-endian
    t = bytearray(512)
    for u in range(256):
        b = ~u & 0xFF
        m = (((b & 0x0F) << 3) + _ULAW_BIAS) << ((b & 0x70) >> 4)
        v = (_ULAW_BIAS - m) if b & 0x80 else (m - _ULAW_BIAS)
        t[2 * u] = v & 0xFF
        t[2 * u + 1] = (v >> 8) & 0xFF
    return t


_SEG = _segments()
_PCM = _decoded()


@micropython.viper
def _convert(src: ptr32, dst: ptr16, ring: ptr8, state: ptr32) -> int:
    # A frame of 32-bit slots -> s16 PCM into dst, DC removal and gain, and u-law into the
    # ring at byte state[_DST]; returns the sum of |sample|.
    # Sample maths stays within +/-2**30: 20-bit sample x Q6 gain <= 640 (+20 dB).
    s = src
    st = state
    d = dst
    q = ptr8(uint(ring) + int(st[_DST]))
    n = FRAME_SAMPLES
    seg = ptr8(_SEG)
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
        d[i] = y
        mask = 0xFF
        if y < 0:
            y = -y
            total += y
            mask = 0x7F
        else:
            total += y
        if y > _ULAW_CLIP:
            y = _ULAW_CLIP
        y += _ULAW_BIAS
        e = seg[y >> 7]
        q[i] = ((e << 4) | ((y >> (e + 3)) & 0x0F)) ^ mask
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
def _decode(dst: ptr8, dst_at: int, src: ptr8, src_at: int):
    # one stored frame (u-law at byte src_at of src) -> 16-bit PCM at byte dst_at of dst
    d = ptr16(uint(dst) + dst_at)
    q = ptr8(uint(src) + src_at)
    pcm = ptr16(_PCM)
    i = 0
    while i < FRAME_SAMPLES:
        d[i] = pcm[q[i]]
        i += 1


class FrameRing:
    # N frames of u-law in one buffer; `written` counts frames since the mic started.
    # Frame k lives at offset(k) until frame k + N overwrites it. (Offsets rather than
    # per-frame memoryviews: those would cost RAM the pre-roll needs.)
    def __init__(self, frames):
        self.count = frames
        self.buf = bytearray(frames * _STORED_BYTES)
        self.written = 0

    def offset(self, k):
        return (k % self.count) * _STORED_BYTES

    def copy_out(self, k, dst, dst_at):
        # Frame k as 16-bit PCM into dst at byte offset dst_at (which must be even).
        _decode(dst, dst_at, self.buf, self.offset(k))

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
        self.frame = bytearray(FRAME_BYTES)  # the last frame as 16-bit PCM
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
        # Blocks for one frame (the DMA paces it), converts it into `frame` and, as u-law,
        # into the ring; returns `frame`. Raises OSError on a short I2S read.
        n = self._i2s.readinto(self._raw)
        if n != FRAME_SAMPLES * _SLOT_BYTES:
            raise OSError("short I2S read")
        ring = self.ring
        self._state[_DST] = ring.offset(ring.written)
        self.level = _convert(self._raw, self.frame, ring.buf, self._state) // FRAME_SAMPLES
        ring.written += 1
        return self.frame
