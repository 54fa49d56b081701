# Streaming int8 inference of a microWakeWord model (loaded by wakemodel.py), equal to
# TFLite's reference kernels on every invocation.
#   net = Net(model); net.feed(feats) -> True every `stride` feeds, with net.prob (0..255)
# feats: the frontend's 40 uint16 values (array("H")), quantised here as pymicro-wakeword
# does, but clamped: q = clamp(round(u * 0.0390625 / scale) + zero point, -128, 127),
# in integers with the converter's constants.
#
# Every streaming tensor is a ring of its last frames (uint8 = int8 + 128); each op reads
# the last K frames of one ring and writes one frame of another. Nothing is copied.
# The arithmetic, per output channel (x, w int8; u = x + 128 as stored):
#   acc = bias + sum w (x - zp_in)
#     column order (the convolutions): sum (w + 128)(u - z) - 128 sum (u - z), z = zp_in +
#       128, skipping inputs equal to z (most features); DELTA (a 1x1 over ops' outputs):
#       the sums are kept from the last invocation and only inputs that changed are added,
#       (w + 128)(u - u_before)
#     depthwise: sum ((w + 128) - 128) u, skipping zero inputs (ReLU'd), zp_in in the bias
#     dense (FULLY_CONNECTED, row order): sum (w + 128) u - 128 sum u, zp_in in the bias
#   y = MultiplyByQuantizedMultiplier(acc, M, -s) + zp, clamped (ReLU: at zp); with two
#   roundings that is floor((acc M + 2**(30 + s) + sigma 2**30) / 2**(31 + s)), sigma = 1 for
#   acc >= 0, -1 below; FULLY_CONNECTED rounds once (sigma = 0), as BUILTIN_REF does
#   (measured: its two roundings differ on 2 of 2597 outputs).
# Exact, in 32 bits: X = floor(acc M / 2**30) from 15-bit limbs (acc = ah 2**15 + al,
# M = 2**30 + m1 2**15 + m0): acc + ah m1 + ((ah m0 + al m1 + (al m0 >> 15)) >> 15), then
# y = (X + 2**s + sigma) >> (s + 1). The converter checks |acc| < 2**29, so every term stays
# within 32 signed bits.
# Fast, in an op whose shifts are all >= 5 (_FAST; the bundled models), for about 97 % of
# the channels: t = floor(acc 2**(7 - s)) = (acc << 2) >> (s - 5) and V = t (M >> 15) +
# ((t (M & 0x7FFF)) >> 15) = floor(t M / 2**15), two products. acc M / 2**(s + 8) - V is in
# [0, 1 + 2**16) (the bits of acc dropped, none for s <= 7), the rounding terms are 2**22 +
# sigma 2**(22 - s), so with W = V + 2**22, y = floor((W + d) / 2**23), d in [-2**17,
# 2**17 + 1): y = W >> 23 unless W mod 2**23 is less than 2**17 or more than 2**23 - 2**17 - 2.
# Those few, and t out of the range where y + zp needs no clamp (|t| < k 2**7 gives |y| <= k,
# k a power of 2 up to the room between zp and the clamps), take the exact path; a ReLU's
# t <= 0 (acc < 2**(s - 7)) gives y <= 0: lo.
# Words read back through ptr32 are stored non-negative (ESP32 loads sign-extend, the
# 64-bit unix port's zero-extend): accumulators are kept + 0x20202020.
#
# Speed: viper keeps the first three locals in registers (two when mpy-cross compiles it),
# so _run's first three (p, x, a) are each phase's hot pointers and value; inner loops are
# unrolled with constant offsets; all the ops run in one call (a call costs about a
# thousand x86 instructions). Measured (callgrind on the unix port, `make bench`): a
# multiply-add about 8 instructions in column order (9.5 in row order), a depthwise slot
# about 9.5 (zero inputs skipped), a requantised channel about 75 (45 for a ReLU's zero);
# hey_jarvis 6.0 M instructions per second of audio.
import micropython
from micropython import const

# wakemodel.py's program layout
_HEADER = const(16)
_H_NOPS = const(0)
_H_NBUF = const(1)
_H_STRIDE = const(2)
_H_QMUL = const(3)
_H_QADD = const(4)
_H_QSHIFT = const(5)
_H_QCAP = const(6)
_H_TABLE = const(7)
_H_OUTBUF = const(8)
_H_MAXC = const(9)
_H_WORDS = const(10)  # the program's length: the accumulators follow it
_B_BASE = const(0)
_B_STRIDE = const(1)
_B_FRAMES = const(2)
_B_LAST = const(3)
_B_LAST0 = const(4)
_B_INIT = const(5)
_BUF_WORDS = const(6)
_O_KIND = const(0)
_O_SRC = const(1)
_O_FRAMES = const(2)
_O_C0 = const(3)  # depthwise: the first channel; column order: the input zero point + 128;
# DELTA: the byte offset of its sums in the rings
_O_W = const(4)
_O_COUT = const(5)
_O_PAR = const(6)
_O_DST = const(7)
_O_DOFF = const(8)
_O_ZP = const(9)
_O_LO = const(10)
_O_HI = const(11)
_OP_WORDS = const(12)
_DENSE = const(0)
_DEPTHWISE = const(1)
_COLUMN = const(2)
_GIVEN = const(3)  # requantise the accumulators as they are (not in model files: for tests)
_ROUND_ONCE = const(16)  # in an op's kind: one rounding (sigma = 0)
_FAST = const(32)  # in an op's kind: every shift s >= 5, stored as s - 5
_DELTA = const(64)  # in an op's kind: column order, keeping its sums in the rings at c0
_FEATURES = const(40)
_BIAS_OFFSET = const(0x400000)  # biases are stored + this, << 8, | the shift byte
_ACC0 = const(0x20202020)  # accumulators start here (kept non-negative; bytes 0x20: a ring's fill)
_HALF = const(0x400000)  # the fast path's rounding term, 2**22
_NEAR = const(0x20001)  # ... its largest error above, 2**17 + 1
_WIN = const(0x40001)  # ... and the width of its uncertain window, _NEAR + 2**17


SENSITIVITIES = ("low", "default", "high")


class Model:
    # What wakemodel.load() read and checked: phrase, window (the sliding window of
    # probabilities), stride, cutoff(name); for Net: words (program + scratch, int32),
    # blob (bytearray), ops_at, rings_bytes. (Here, not in wakemodel.py, so that the loader
    # can be freed once the board runs.)
    def __init__(self, meta, words, blob):
        self.phrase = meta["phrase"]
        self.window = meta["window"]
        self.stride = words[_H_STRIDE]
        self.words = words
        self.blob = blob
        self.ops_at = _HEADER + _BUF_WORDS * words[_H_NBUF]
        self.rings_bytes = words[meta["program"] - 1]
        sens = meta["sensitivities"]
        self._cutoffs = tuple(sens[k]["cutoff"] for k in SENSITIVITIES)

    def cutoff(self, name="default"):
        if name not in SENSITIVITIES:
            raise ValueError("no sensitivity %r; the model has %s" % (name, ", ".join(SENSITIVITIES)))
        return self._cutoffs[SENSITIVITIES.index(name)]


class Net:
    def __init__(self, model):
        # one Net per Model: it keeps its ring positions in the model's program words
        self._ws = model.words
        self._blob = model.blob
        self._rings = bytearray(model.rings_bytes)
        self._ops = model.ops_at
        self.stride = model.stride
        self.reset()

    def reset(self):
        # streaming state back to the model's initial values
        ws, rings, blob = self._ws, self._rings, self._blob
        for b in range(_HEADER, _HEADER + _BUF_WORDS * ws[_H_NBUF], _BUF_WORDS):
            base, size, init = ws[b + _B_BASE], ws[b + _B_STRIDE] * ws[b + _B_FRAMES], ws[b + _B_INIT]
            if init < 256:
                _fill(rings, base, size, init)
            else:
                rings[base:base + size] = blob[init - 256:init - 256 + size]
            ws[b + _B_LAST] = ws[b + _B_LAST0]
        self._n = 0
        self.prob = 0

    @micropython.native
    def feed(self, feats):
        # feats: array("H") of the frontend's 40 values. True when the model was invoked.
        self._n += 1
        if self._n < self.stride:
            _quantise(feats, self._rings, 0, self._ws)
            return False
        self._n = 0
        ws, blob, rings = self._ws, self._blob, self._rings
        _quantise(feats, rings, 1, ws)
        self.prob = _run(blob, self._ops, ws, rings)
        return True


@micropython.viper
def _fill(buf: ptr8, at: int, n: int, v: int):
    i = at
    while i < at + n:
        buf[i] = v
        i += 1


@micropython.viper
def _quantise(f: ptr16, q: ptr8, u: int, ws: ptr32):
    # the next slot of the input ring (ring 0) <- the 40 features f, quantised
    # (f: the features, q: the rings); u != 0: this feed invokes the model, so every
    # other ring moves on to the slot this invocation writes
    b = ptr32(uint(ws) + 4 * (_HEADER + _BUF_WORDS))
    end = uint(ws) + 4 * (_HEADER + _BUF_WORDS * ws[_H_NBUF])
    while u and uint(b) < end:
        last = b[_B_LAST] + 1
        if last == b[_B_FRAMES]:
            last = 0
        b[_B_LAST] = last
        b = ptr32(uint(b) + 4 * _BUF_WORDS)
    b = ptr32(uint(ws) + 4 * _HEADER)
    u = b[_B_LAST] + 1
    if u == b[_B_FRAMES]:
        u = 0
    b[_B_LAST] = u
    q = ptr8(uint(q) + b[_B_BASE] + u * b[_B_STRIDE])
    mul = ws[_H_QMUL]
    add = ws[_H_QADD]
    sh = ws[_H_QSHIFT]
    cap = ws[_H_QCAP]
    end = uint(q) + _FEATURES
    while uint(q) < end:
        u = f[0]
        if u > cap:
            u = cap
        q[0] = (u * mul + add) >> sh
        u = f[1]
        if u > cap:
            u = cap
        q[1] = (u * mul + add) >> sh
        u = f[2]
        if u > cap:
            u = cap
        q[2] = (u * mul + add) >> sh
        u = f[3]
        if u > cap:
            u = cap
        q[3] = (u * mul + add) >> sh
        q = ptr8(uint(q) + 4)
        f = ptr16(uint(f) + 8)


@micropython.viper
def _run(p: ptr8, x: int, a: ptr32, q: ptr8) -> int:
    # p: the blob, x: the first op's word index, a: the program words, q: the rings.
    # Every op in order, in one call (a viper call costs about a thousand instructions):
    # accumulate (a dense op: row order; the others: accumulators after the program, or a
    # DELTA op's kept sums), then requantise into the op's output frame. Returns the
    # logistic table at the output ring's one value: the probability, uint8.
    ws = uint(a)
    blob = uint(p)
    rings = uint(q)
    rec = x
    recs = x + _OP_WORDS * ptr32(ws)[_H_NOPS]
    while rec < recs:
        r = ptr32(ws + 4 * rec)
        rec += _OP_WORDS
        b = ptr32(ws + 4 * r[_O_SRC])
        stride = b[_B_STRIDE]
        frames = b[_B_FRAMES]
        k = r[_O_FRAMES]
        slot = b[_B_LAST] - k + 1
        if slot < 0:
            slot += frames
        base = rings + b[_B_BASE]
        d = ptr32(ws + 4 * r[_O_DST])
        out = rings + d[_B_BASE] + d[_B_LAST] * d[_B_STRIDE] + r[_O_DOFF]
        w = blob + r[_O_W]
        par = blob + r[_O_PAR]
        zp = r[_O_ZP]
        lo = r[_O_LO]
        hi = r[_O_HI]
        twice = 1  # sigma's size: 0 with _ROUND_ONCE
        if r[_O_KIND] & _ROUND_ONCE:
            twice = 0
        s0 = 0  # the shift byte + s0 = s
        if r[_O_KIND] & _FAST:
            s0 = 5
        kind = r[_O_KIND] & 15
        row = r[_O_COUT]  # output channels: a column op's row of weights per input byte
        if kind == _DENSE:
            # FULLY_CONNECTED: per output channel the sum of uint8 weight x uint8 input over
            # the window (one or two runs of whole frames: the ring wraps; each a multiple
            # of 4 bytes), - 128 x the inputs' sum + bias, requantised by the exact path
            x1 = base + slot * stride
            k *= stride  # bytes in the window
            n1 = k
            if slot * stride + k > frames * stride:
                n1 = (frames - slot) * stride
            n2 = k - n1
            s = 0
            a = ptr32(x1)
            while uint(a) < x1 + n1:
                s += ptr8(a)[0] + ptr8(a)[1] + ptr8(a)[2] + ptr8(a)[3]
                a = ptr32(uint(a) + 4)
            a = ptr32(base)
            while uint(a) < base + n2:
                s += ptr8(a)[0] + ptr8(a)[1] + ptr8(a)[2] + ptr8(a)[3]
                a = ptr32(uint(a) + 4)
            corr = 128 * s + _BIAS_OFFSET
            f1 = x1 + (n1 & -16)
            f2 = base + (n2 & -16)
            end = out + row
            while out < end:
                p = ptr8(w)
                a = ptr32(x1)
                x = 0
                while uint(a) < f1:
                    x = p[0] * ptr8(a)[0] + x
                    x = p[1] * ptr8(a)[1] + x
                    x = p[2] * ptr8(a)[2] + x
                    x = p[3] * ptr8(a)[3] + x
                    x = p[4] * ptr8(a)[4] + x
                    x = p[5] * ptr8(a)[5] + x
                    x = p[6] * ptr8(a)[6] + x
                    x = p[7] * ptr8(a)[7] + x
                    x = p[8] * ptr8(a)[8] + x
                    x = p[9] * ptr8(a)[9] + x
                    x = p[10] * ptr8(a)[10] + x
                    x = p[11] * ptr8(a)[11] + x
                    x = p[12] * ptr8(a)[12] + x
                    x = p[13] * ptr8(a)[13] + x
                    x = p[14] * ptr8(a)[14] + x
                    x = p[15] * ptr8(a)[15] + x
                    p = ptr8(uint(p) + 16)
                    a = ptr32(uint(a) + 16)
                if n1 & 8:
                    x = p[0] * ptr8(a)[0] + x
                    x = p[1] * ptr8(a)[1] + x
                    x = p[2] * ptr8(a)[2] + x
                    x = p[3] * ptr8(a)[3] + x
                    x = p[4] * ptr8(a)[4] + x
                    x = p[5] * ptr8(a)[5] + x
                    x = p[6] * ptr8(a)[6] + x
                    x = p[7] * ptr8(a)[7] + x
                    p = ptr8(uint(p) + 8)
                    a = ptr32(uint(a) + 8)
                if n1 & 4:
                    x = p[0] * ptr8(a)[0] + x
                    x = p[1] * ptr8(a)[1] + x
                    x = p[2] * ptr8(a)[2] + x
                    x = p[3] * ptr8(a)[3] + x
                    p = ptr8(uint(p) + 4)
                if n2:
                    a = ptr32(base)
                    while uint(a) < f2:
                        x = p[0] * ptr8(a)[0] + x
                        x = p[1] * ptr8(a)[1] + x
                        x = p[2] * ptr8(a)[2] + x
                        x = p[3] * ptr8(a)[3] + x
                        x = p[4] * ptr8(a)[4] + x
                        x = p[5] * ptr8(a)[5] + x
                        x = p[6] * ptr8(a)[6] + x
                        x = p[7] * ptr8(a)[7] + x
                        x = p[8] * ptr8(a)[8] + x
                        x = p[9] * ptr8(a)[9] + x
                        x = p[10] * ptr8(a)[10] + x
                        x = p[11] * ptr8(a)[11] + x
                        x = p[12] * ptr8(a)[12] + x
                        x = p[13] * ptr8(a)[13] + x
                        x = p[14] * ptr8(a)[14] + x
                        x = p[15] * ptr8(a)[15] + x
                        p = ptr8(uint(p) + 16)
                        a = ptr32(uint(a) + 16)
                    if n2 & 8:
                        x = p[0] * ptr8(a)[0] + x
                        x = p[1] * ptr8(a)[1] + x
                        x = p[2] * ptr8(a)[2] + x
                        x = p[3] * ptr8(a)[3] + x
                        x = p[4] * ptr8(a)[4] + x
                        x = p[5] * ptr8(a)[5] + x
                        x = p[6] * ptr8(a)[6] + x
                        x = p[7] * ptr8(a)[7] + x
                        p = ptr8(uint(p) + 8)
                        a = ptr32(uint(a) + 8)
                    if n2 & 4:
                        x = p[0] * ptr8(a)[0] + x
                        x = p[1] * ptr8(a)[1] + x
                        x = p[2] * ptr8(a)[2] + x
                        x = p[3] * ptr8(a)[3] + x
                        p = ptr8(uint(p) + 4)
                p = ptr8(par)
                x = x + (ptr32(p)[1] >> 8) - corr
                t = x >> 15
                s = x & 0x7FFF
                t = x + t * (ptr16(p)[0] - 0x8000) + ((t * ptr16(p)[1] + s * (ptr16(p)[0] - 0x8000)
                                                        + ((s * ptr16(p)[1]) >> 15)) >> 15)
                if x < 0:
                    t -= twice << 1
                s = p[4] + s0
                x = ((t + (1 << s) + twice) >> (s + 1)) + zp
                if x < lo:
                    x = lo
                elif x > hi:
                    x = hi
                ptr8(out)[0] = x
                out += 1
                par += 8
                w += k
            continue
        cout = (row + 3) & -4  # padded (a column op reads on past its last row for those)
        scr = ws + 4 * ptr32(ws)[_H_WORDS]
        lst = scr + 4 * ptr32(ws)[_H_MAXC]  # the exact path's list (uint16 offsets)
        delta = r[_O_KIND] & _DELTA
        if delta:
            scr = rings + r[_O_C0] + 4  # the kept sums (the inputs' sum before them)
        end = scr + 4 * cout
        end16 = scr + 4 * (cout & -16)
        a = ptr32(scr)
        while not delta and kind != _GIVEN and uint(a) < end:
            a[0] = _ACC0
            a[1] = _ACC0
            a[2] = _ACC0
            a[3] = _ACC0
            a = ptr32(uint(a) + 16)
        corr = _ACC0 + _BIAS_OFFSET
        if kind == _DEPTHWISE:
            # frame by frame over the window, channel c0 + i of each frame into accumulator
            # i; inputs are ReLU outputs, often zero (uint8 0): skip those
            base += r[_O_C0]
            while k:
                p = ptr8(w)
                x = int(base) + slot * stride
                a = ptr32(scr)
                while uint(a) < end16:
                    if ptr8(x)[0]:
                        a[0] = (p[0] - 128) * ptr8(x)[0] + a[0]
                    if ptr8(x)[1]:
                        a[1] = (p[1] - 128) * ptr8(x)[1] + a[1]
                    if ptr8(x)[2]:
                        a[2] = (p[2] - 128) * ptr8(x)[2] + a[2]
                    if ptr8(x)[3]:
                        a[3] = (p[3] - 128) * ptr8(x)[3] + a[3]
                    if ptr8(x)[4]:
                        a[4] = (p[4] - 128) * ptr8(x)[4] + a[4]
                    if ptr8(x)[5]:
                        a[5] = (p[5] - 128) * ptr8(x)[5] + a[5]
                    if ptr8(x)[6]:
                        a[6] = (p[6] - 128) * ptr8(x)[6] + a[6]
                    if ptr8(x)[7]:
                        a[7] = (p[7] - 128) * ptr8(x)[7] + a[7]
                    if ptr8(x)[8]:
                        a[8] = (p[8] - 128) * ptr8(x)[8] + a[8]
                    if ptr8(x)[9]:
                        a[9] = (p[9] - 128) * ptr8(x)[9] + a[9]
                    if ptr8(x)[10]:
                        a[10] = (p[10] - 128) * ptr8(x)[10] + a[10]
                    if ptr8(x)[11]:
                        a[11] = (p[11] - 128) * ptr8(x)[11] + a[11]
                    if ptr8(x)[12]:
                        a[12] = (p[12] - 128) * ptr8(x)[12] + a[12]
                    if ptr8(x)[13]:
                        a[13] = (p[13] - 128) * ptr8(x)[13] + a[13]
                    if ptr8(x)[14]:
                        a[14] = (p[14] - 128) * ptr8(x)[14] + a[14]
                    if ptr8(x)[15]:
                        a[15] = (p[15] - 128) * ptr8(x)[15] + a[15]
                    a = ptr32(uint(a) + 64)
                    p = ptr8(uint(p) + 16)
                    x += 16
                if cout & 8:
                    if ptr8(x)[0]:
                        a[0] = (p[0] - 128) * ptr8(x)[0] + a[0]
                    if ptr8(x)[1]:
                        a[1] = (p[1] - 128) * ptr8(x)[1] + a[1]
                    if ptr8(x)[2]:
                        a[2] = (p[2] - 128) * ptr8(x)[2] + a[2]
                    if ptr8(x)[3]:
                        a[3] = (p[3] - 128) * ptr8(x)[3] + a[3]
                    if ptr8(x)[4]:
                        a[4] = (p[4] - 128) * ptr8(x)[4] + a[4]
                    if ptr8(x)[5]:
                        a[5] = (p[5] - 128) * ptr8(x)[5] + a[5]
                    if ptr8(x)[6]:
                        a[6] = (p[6] - 128) * ptr8(x)[6] + a[6]
                    if ptr8(x)[7]:
                        a[7] = (p[7] - 128) * ptr8(x)[7] + a[7]
                    a = ptr32(uint(a) + 32)
                    p = ptr8(uint(p) + 8)
                    x += 8
                if cout & 4:
                    if ptr8(x)[0]:
                        a[0] = (p[0] - 128) * ptr8(x)[0] + a[0]
                    if ptr8(x)[1]:
                        a[1] = (p[1] - 128) * ptr8(x)[1] + a[1]
                    if ptr8(x)[2]:
                        a[2] = (p[2] - 128) * ptr8(x)[2] + a[2]
                    if ptr8(x)[3]:
                        a[3] = (p[3] - 128) * ptr8(x)[3] + a[3]
                w += cout
                slot += 1
                if slot == frames:
                    slot = 0
                k -= 1
        elif delta:
            # the sums are brought up to date with the inputs that changed since the last
            # invocation: the ring's other slot holds the previous frame
            x = slot - 1
            if x < 0:
                x += frames
            off = (x - slot) * stride
            p = ptr8(base + slot * stride)
            run = uint(p)
            stop = run + stride
            s = ptr32(scr - 4)[0]
            while uint(p) < stop:
                x = p[0] - ptr8(uint(p) + off)[0]
                if x:
                    s += x
                    at = uint(p)
                    p = ptr8(w + (at - run) * row)
                    a = ptr32(scr)
                    while uint(a) < end16:
                        a[0] = p[0] * x + a[0]
                        a[1] = p[1] * x + a[1]
                        a[2] = p[2] * x + a[2]
                        a[3] = p[3] * x + a[3]
                        a[4] = p[4] * x + a[4]
                        a[5] = p[5] * x + a[5]
                        a[6] = p[6] * x + a[6]
                        a[7] = p[7] * x + a[7]
                        a[8] = p[8] * x + a[8]
                        a[9] = p[9] * x + a[9]
                        a[10] = p[10] * x + a[10]
                        a[11] = p[11] * x + a[11]
                        a[12] = p[12] * x + a[12]
                        a[13] = p[13] * x + a[13]
                        a[14] = p[14] * x + a[14]
                        a[15] = p[15] * x + a[15]
                        a = ptr32(uint(a) + 64)
                        p = ptr8(uint(p) + 16)
                    if cout & 8:
                        a[0] = p[0] * x + a[0]
                        a[1] = p[1] * x + a[1]
                        a[2] = p[2] * x + a[2]
                        a[3] = p[3] * x + a[3]
                        a[4] = p[4] * x + a[4]
                        a[5] = p[5] * x + a[5]
                        a[6] = p[6] * x + a[6]
                        a[7] = p[7] * x + a[7]
                        a = ptr32(uint(a) + 32)
                        p = ptr8(uint(p) + 8)
                    if cout & 4:
                        a[0] = p[0] * x + a[0]
                        a[1] = p[1] * x + a[1]
                        a[2] = p[2] * x + a[2]
                        a[3] = p[3] * x + a[3]
                    p = ptr8(at)
                p = ptr8(uint(p) + 1)
            ptr32(scr - 4)[0] = s
            corr += 128 * (s - _ACC0)
        elif kind == _COLUMN:
            # for each input byte of the window (one or two runs: the ring wraps) that is not
            # the zero point z: accumulator[o] += weight[byte][o] (u - z); 128 x their sum ->
            # corr. p scans the window; at a byte to use, it moves to that byte's weights and
            # back.
            z = r[_O_C0]
            p = ptr8(base + slot * stride)
            run = uint(p)  # where this run starts; w: its weights
            stop = run + k * stride
            n2 = 0
            if slot + k > frames:
                stop = base + frames * stride
                n2 = k * stride - (stop - run)
            s = 0
            while True:
                while uint(p) < stop:
                    x = p[0] - z
                    if x:
                        s += x
                        at = uint(p)
                        p = ptr8(w + (at - run) * row)
                        a = ptr32(scr)
                        while uint(a) < end16:
                            a[0] = p[0] * x + a[0]
                            a[1] = p[1] * x + a[1]
                            a[2] = p[2] * x + a[2]
                            a[3] = p[3] * x + a[3]
                            a[4] = p[4] * x + a[4]
                            a[5] = p[5] * x + a[5]
                            a[6] = p[6] * x + a[6]
                            a[7] = p[7] * x + a[7]
                            a[8] = p[8] * x + a[8]
                            a[9] = p[9] * x + a[9]
                            a[10] = p[10] * x + a[10]
                            a[11] = p[11] * x + a[11]
                            a[12] = p[12] * x + a[12]
                            a[13] = p[13] * x + a[13]
                            a[14] = p[14] * x + a[14]
                            a[15] = p[15] * x + a[15]
                            a = ptr32(uint(a) + 64)
                            p = ptr8(uint(p) + 16)
                        if cout & 8:
                            a[0] = p[0] * x + a[0]
                            a[1] = p[1] * x + a[1]
                            a[2] = p[2] * x + a[2]
                            a[3] = p[3] * x + a[3]
                            a[4] = p[4] * x + a[4]
                            a[5] = p[5] * x + a[5]
                            a[6] = p[6] * x + a[6]
                            a[7] = p[7] * x + a[7]
                            a = ptr32(uint(a) + 32)
                            p = ptr8(uint(p) + 8)
                        if cout & 4:
                            a[0] = p[0] * x + a[0]
                            a[1] = p[1] * x + a[1]
                            a[2] = p[2] * x + a[2]
                            a[3] = p[3] * x + a[3]
                        p = ptr8(at)
                    p = ptr8(uint(p) + 1)
                if not n2:
                    break
                w += (stop - run) * row
                p = ptr8(base)
                run = base
                stop = base + n2
                n2 = 0
            corr += 128 * s
        # (_GIVEN: the accumulators are already there; tests requantise any value this way)
        # Requantise, 4 channels at a time: a walks the accumulators, p the parameters (8
        # bytes per channel: u16 M >> 15, u16 M & 0x7FFF, u32 ((bias + _BIAS_OFFSET) << 8) |
        # the shift byte), out the output frame. Where the fast path cannot answer, the
        # accumulator's offset goes on a list for the exact path.
        # The fast path's range: t in [tlo, tlo + span) keeps y + zp within lo..hi without
        # a clamp: for |t| < k 2**7, acc M / 2**(31 + s) is within (-k, k), so -k <= y <= k
        room = hi - zp
        relu = 0  # with a ReLU (lo = zp), t <= 0 means acc < 2**(s - 7), so y <= 0: lo
        if lo != zp:
            relu = -0x3FFFFFFF
            if zp - lo < room:
                room = zp - lo
        k = 128  # (room < 256)
        while k > room:
            k >>= 1
        k <<= 7
        tlo = 1 - k  # t in (-k, k), or (0, k) with a ReLU
        if relu == 0:
            tlo = 1
        span = uint(k - tlo)
        if k <= tlo or not s0:  # (room 0: y must be 0; no _FAST: the exact path only)
            span = uint(0)
        n = lst
        p = ptr8(par)
        a = ptr32(scr)
        at = out
        while uint(a) < end:
            x = a[0] + (ptr32(p)[1] >> 8) - corr
            x = (x << 2) >> p[4]
            if uint(x - tlo) < span:
                x = x * ptr16(p)[0] + ((x * ptr16(p)[1]) >> 15) + _HALF
                if ((x + _NEAR) & 0x7FFFFF) >= _WIN:
                    ptr8(out)[0] = (x >> 23) + zp
                else:
                    ptr16(n)[0] = uint(a) - scr
                    n += 2
            elif x <= relu:
                ptr8(out)[0] = lo
            else:
                ptr16(n)[0] = uint(a) - scr
                n += 2
            x = a[1] + (ptr32(p)[3] >> 8) - corr
            x = (x << 2) >> p[12]
            if uint(x - tlo) < span:
                x = x * ptr16(p)[4] + ((x * ptr16(p)[5]) >> 15) + _HALF
                if ((x + _NEAR) & 0x7FFFFF) >= _WIN:
                    ptr8(out)[1] = (x >> 23) + zp
                else:
                    ptr16(n)[0] = uint(a) - scr + 4
                    n += 2
            elif x <= relu:
                ptr8(out)[1] = lo
            else:
                ptr16(n)[0] = uint(a) - scr + 4
                n += 2
            x = a[2] + (ptr32(p)[5] >> 8) - corr
            x = (x << 2) >> p[20]
            if uint(x - tlo) < span:
                x = x * ptr16(p)[8] + ((x * ptr16(p)[9]) >> 15) + _HALF
                if ((x + _NEAR) & 0x7FFFFF) >= _WIN:
                    ptr8(out)[2] = (x >> 23) + zp
                else:
                    ptr16(n)[0] = uint(a) - scr + 8
                    n += 2
            elif x <= relu:
                ptr8(out)[2] = lo
            else:
                ptr16(n)[0] = uint(a) - scr + 8
                n += 2
            x = a[3] + (ptr32(p)[7] >> 8) - corr
            x = (x << 2) >> p[28]
            if uint(x - tlo) < span:
                x = x * ptr16(p)[12] + ((x * ptr16(p)[13]) >> 15) + _HALF
                if ((x + _NEAR) & 0x7FFFFF) >= _WIN:
                    ptr8(out)[3] = (x >> 23) + zp
                else:
                    ptr16(n)[0] = uint(a) - scr + 12
                    n += 2
            elif x <= relu:
                ptr8(out)[3] = lo
            else:
                ptr16(n)[0] = uint(a) - scr + 12
                n += 2
            a = ptr32(uint(a) + 16)
            p = ptr8(uint(p) + 32)
            out += 4
        # exact: X = floor(acc M / 2**30), y = (X + 2**s + sigma) >> (s + 1), clamped
        while lst < n:
            k = ptr16(lst)[0]
            p = ptr8(par + 2 * k)
            x = ptr32(scr + k)[0] + (ptr32(p)[1] >> 8) - corr
            t = x >> 15
            s = x & 0x7FFF
            t = x + t * (ptr16(p)[0] - 0x8000) + ((t * ptr16(p)[1] + s * (ptr16(p)[0] - 0x8000)
                                                    + ((s * ptr16(p)[1]) >> 15)) >> 15)
            if x < 0:
                t -= twice << 1
            s = p[4] + s0
            x = ((t + (1 << s) + twice) >> (s + 1)) + zp
            if x < lo:
                x = lo
            elif x > hi:
                x = hi
            ptr8(at + (k >> 2))[0] = x
            lst += 2
    b = ptr32(ws + 4 * ptr32(ws)[_H_OUTBUF])
    return ptr8(blob)[ptr32(ws)[_H_TABLE] + ptr8(rings)[b[_B_BASE]]]
