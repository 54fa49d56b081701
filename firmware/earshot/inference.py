# Streaming int8 inference of a microWakeWord model (loaded by wakemodel.py), equal to
# TFLite's reference kernels on every invocation.
#   net = Net(model); net.feed(feats) -> True every `stride` feeds, with net.prob (0..255)
# feats: the frontend's 40 uint16 values (array("H")), quantised here as pymicro-wakeword
# does, but clamped: q = clamp(round(u * 0.0390625 / scale) + zero point, -128, 127),
# in integers with the converter's constants.
#
# Every streaming tensor is a ring of its last frames (uint8 = int8 + 128); each op reads
# the last K frames of one ring and writes one frame of another. Nothing is copied.
# The arithmetic, per output channel (x, w int8; the zero point folded into the bias):
#   acc = bias + sum w x          dense: sum (w + 128) u - 128 sum u   (u = x + 128)
#                                 depthwise: sum ((w + 128) - 128) u
#   y = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, M), s) + zp, clamped
#       (ReLU: at zp); FULLY_CONNECTED rounds once: floor(acc M / 2**(31 + s) + 1/2) + zp
#       (what BUILTIN_REF does, measured: its two roundings differ on 2 of 2597 outputs)
# floor(acc M / 2**30) is assembled from 15-bit limbs (acc = ah 2**15 + al, M = 2**30 +
# m1 2**15 + m0): acc + ah m1 + ((ah m0 + al m1 + (al m0 >> 15)) >> 15). The converter
# checks |acc| < 2**29, so every term stays within 32 signed bits.
# Words read back through ptr32 are stored non-negative (ESP32 loads sign-extend, the
# 64-bit unix port's zero-extend): depthwise sums are kept + 2**29.
#
# Speed: viper keeps the first three locals in registers, so each kernel gets its hot
# pointers and accumulator as its first three arguments; inner loops are unrolled with
# constant offsets. Measured (`make bench`, callgrind on the unix
# port): a dense multiply-add costs about 10 x86 instructions, a depthwise one about 16
# (zero ReLU inputs skipped), a requantised channel about 170; hey_jarvis about 10.5 M
# instructions per second of audio.
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
_H_WORDS = const(10)  # the program's length: CORR is the word after it, then the accumulators
_B_BASE = const(0)
_B_STRIDE = const(1)
_B_FRAMES = const(2)
_B_LAST = const(3)
_B_LAST0 = const(4)
_B_INIT = const(5)
_BUF_WORDS = const(6)
_O_SRC = const(1)
_O_FRAMES = const(2)
_O_C0 = const(3)
_O_W = const(4)
_O_COUT = const(5)
_O_PAR = const(6)
_O_DST = const(7)
_O_DOFF = const(8)
_O_ZP = const(9)
_O_LO = const(10)
_O_HI = const(11)
_OP_WORDS = const(12)
_O_KIND = const(0)
_ROUND_ONCE = const(16)  # in an op's kind: one rounding, floor(acc M / 2**(31 + s) + 1/2)
_FEATURES = const(40)
_BIAS_OFFSET = const(0x1000000)  # biases are stored + this, << 5, | the right shift
_ACC0 = const(0x20000000)  # depthwise sums start here (kept non-negative)


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
        self._end = model.ops_at + _OP_WORDS * model.words[_H_NOPS]
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
        _quantise(feats, self._rings, 0, self._ws)
        self._n += 1
        if self._n < self.stride:
            return False
        self._n = 0
        ws, blob, rings = self._ws, self._blob, self._rings
        _advance(ws)
        rec = self._ops
        while rec < self._end:
            kind = ws[rec] & 15
            if kind == 0:
                _dense(blob, rings, rec, ws)
            else:
                if kind == 1:
                    _depthwise(blob, rings, ws, rec)
                else:
                    _sparse(blob, rec, ws, rings)
                _requantise(ws, rec, blob, rings)
            rec += _OP_WORDS
        self.prob = _output(blob, rings, ws)
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
    # (f: the features, q: the rings)
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
        q = ptr8(uint(q) + 1)
        f = ptr16(uint(f) + 2)


@micropython.viper
def _advance(ws: ptr32):
    # every ring but the input's moves on to the slot this invocation writes
    b = ptr32(uint(ws) + 4 * (_HEADER + _BUF_WORDS))
    end = uint(ws) + 4 * (_HEADER + _BUF_WORDS * ws[_H_NBUF])
    while uint(b) < end:
        last = b[_B_LAST] + 1
        if last == b[_B_FRAMES]:
            last = 0
        b[_B_LAST] = last
        b = ptr32(uint(b) + 4 * _BUF_WORDS)


@micropython.viper
def _dense(p: ptr8, q: ptr8, acc: int, ws: ptr32):
    # p: the blob, q: the rings, acc: the op's word index. Per output channel: the sum of
    # uint8 weight x uint8 input over the last K frames, all channels, - 128 x the
    # inputs' sum + bias, requantised (as _requantise) into the op's output frame. The
    # window is one or two runs of whole frames (ring wrap), each a multiple of 4 bytes:
    # 16 at a time, then 8 and 4.
    r = ptr32(uint(ws) + 4 * acc)
    b = ptr32(uint(ws) + 4 * r[_O_SRC])
    stride = b[_B_STRIDE]
    k = r[_O_FRAMES]
    first = b[_B_LAST] - k + 1
    if first < 0:
        first += b[_B_FRAMES]
    d = ptr32(uint(ws) + 4 * r[_O_DST])
    out = uint(q) + d[_B_BASE] + d[_B_LAST] * d[_B_STRIDE] + r[_O_DOFF]
    base = uint(q) + b[_B_BASE]
    x1 = base + first * stride
    row = k * stride
    n1 = row
    if first + k > b[_B_FRAMES]:
        n1 = (b[_B_FRAMES] - first) * stride
    n2 = row - n1
    e1 = x1 + n1
    e2 = base + n2
    s = 0
    q = ptr8(x1)
    while uint(q) < e1:
        s += q[0] + q[1] + q[2] + q[3]
        q = ptr8(uint(q) + 4)
    q = ptr8(base)
    while uint(q) < e2:
        s += q[0] + q[1] + q[2] + q[3]
        q = ptr8(uint(q) + 4)
    corr = 128 * s + _BIAS_OFFSET
    par = uint(p) + r[_O_PAR]
    zp = r[_O_ZP]
    lo = r[_O_LO]
    hi = r[_O_HI]
    relu = -_ACC0  # with a ReLU (lo = zp), any acc <= 0 gives lo
    if lo == zp:
        relu = 0
    twice = 1  # 0: one rounding (_ROUND_ONCE)
    if r[_O_KIND] & _ROUND_ONCE:
        twice = 0
    w = uint(p) + r[_O_W]
    end = out + r[_O_COUT]
    f1 = x1 + (n1 & -16)
    t1 = n1 & 12
    f2 = base + (n2 & -16)
    t2 = n2 & 12
    while out < end:
        p = ptr8(w)
        q = ptr8(x1)
        acc = 0
        while uint(q) < f1:
            acc = p[0] * q[0] + acc
            acc = p[1] * q[1] + acc
            acc = p[2] * q[2] + acc
            acc = p[3] * q[3] + acc
            acc = p[4] * q[4] + acc
            acc = p[5] * q[5] + acc
            acc = p[6] * q[6] + acc
            acc = p[7] * q[7] + acc
            acc = p[8] * q[8] + acc
            acc = p[9] * q[9] + acc
            acc = p[10] * q[10] + acc
            acc = p[11] * q[11] + acc
            acc = p[12] * q[12] + acc
            acc = p[13] * q[13] + acc
            acc = p[14] * q[14] + acc
            acc = p[15] * q[15] + acc
            p = ptr8(uint(p) + 16)
            q = ptr8(uint(q) + 16)
        if t1 & 8:
            acc = p[0] * q[0] + acc
            acc = p[1] * q[1] + acc
            acc = p[2] * q[2] + acc
            acc = p[3] * q[3] + acc
            acc = p[4] * q[4] + acc
            acc = p[5] * q[5] + acc
            acc = p[6] * q[6] + acc
            acc = p[7] * q[7] + acc
            p = ptr8(uint(p) + 8)
            q = ptr8(uint(q) + 8)
        if t1 & 4:
            acc = p[0] * q[0] + acc
            acc = p[1] * q[1] + acc
            acc = p[2] * q[2] + acc
            acc = p[3] * q[3] + acc
            p = ptr8(uint(p) + 4)
        if n2:
            q = ptr8(base)
            while uint(q) < f2:
                acc = p[0] * q[0] + acc
                acc = p[1] * q[1] + acc
                acc = p[2] * q[2] + acc
                acc = p[3] * q[3] + acc
                acc = p[4] * q[4] + acc
                acc = p[5] * q[5] + acc
                acc = p[6] * q[6] + acc
                acc = p[7] * q[7] + acc
                acc = p[8] * q[8] + acc
                acc = p[9] * q[9] + acc
                acc = p[10] * q[10] + acc
                acc = p[11] * q[11] + acc
                acc = p[12] * q[12] + acc
                acc = p[13] * q[13] + acc
                acc = p[14] * q[14] + acc
                acc = p[15] * q[15] + acc
                p = ptr8(uint(p) + 16)
                q = ptr8(uint(q) + 16)
            if t2 & 8:
                acc = p[0] * q[0] + acc
                acc = p[1] * q[1] + acc
                acc = p[2] * q[2] + acc
                acc = p[3] * q[3] + acc
                acc = p[4] * q[4] + acc
                acc = p[5] * q[5] + acc
                acc = p[6] * q[6] + acc
                acc = p[7] * q[7] + acc
                p = ptr8(uint(p) + 8)
                q = ptr8(uint(q) + 8)
            if t2 & 4:
                acc = p[0] * q[0] + acc
                acc = p[1] * q[1] + acc
                acc = p[2] * q[2] + acc
                acc = p[3] * q[3] + acc
        acc = acc + (ptr32(par)[1] >> 5) - corr
        if acc > relu:  # as _requantise
            al = acc & 0x7FFF
            acc += (acc >> 15) * ptr16(par)[1] + (((acc >> 15) * ptr16(par)[0] + al * ptr16(par)[1]
                                                   + ((al * ptr16(par)[0]) >> 15)) >> 15)
            if acc < -1:
                acc -= twice << 1
            al = ptr32(par)[1] & 31
            acc = ((acc + (1 << al) + twice) >> (al + 1)) + zp
            if acc < lo:
                acc = lo
            elif acc > hi:
                acc = hi
        else:
            acc = lo
        ptr8(out)[0] = acc
        out += 1
        par += 8
        w += row


@micropython.viper
def _sparse(p: ptr8, x: int, a: ptr32, q: ptr8):
    # p: the blob, x: the op's word index, a: the program words, q: the rings. A dense op
    # over mostly zero inputs (the features: about 80 % are 0 after quantisation), in
    # column order: for each non-zero input byte x of the window, scratch[o] += w[i][o] x
    # (weights [window byte][output]); 128 x the inputs' sum -> CORR. (About 11 x86
    # instructions per multiply-add against the row order's 10, but zeros cost nothing.)
    ws = uint(a)
    r = ptr32(ws + 4 * x)
    b = ptr32(ws + 4 * r[_O_SRC])
    stride = b[_B_STRIDE]
    k = r[_O_FRAMES]
    first = b[_B_LAST] - k + 1
    if first < 0:
        first += b[_B_FRAMES]
    base = uint(q) + b[_B_BASE]
    src = base + first * stride
    stop = src + k * stride
    n2 = 0
    if first + k > b[_B_FRAMES]:
        stop = base + b[_B_FRAMES] * stride
        n2 = k * stride - (stop - src)
    cout = r[_O_COUT]
    scr = ws + 4 * ptr32(ws)[_H_WORDS] + 4
    end = scr + 4 * cout
    end8 = scr + 4 * (cout & -8)
    a = ptr32(scr)
    while uint(a) < end:
        a[0] = 0
        a = ptr32(uint(a) + 4)
    w = uint(p) + r[_O_W]
    s = 0
    while True:
        while src < stop:
            x = ptr8(src)[0]
            if x:
                s += x
                p = ptr8(w)
                a = ptr32(scr)
                while uint(a) < end8:
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
                    a = ptr32(uint(a) + 16)
                    p = ptr8(uint(p) + 4)
                if cout & 2:
                    a[0] = p[0] * x + a[0]
                    a[1] = p[1] * x + a[1]
                    a = ptr32(uint(a) + 8)
                    p = ptr8(uint(p) + 2)
                if cout & 1:
                    a[0] = p[0] * x + a[0]
            w += cout
            src += 1
        if not n2:
            break
        src = base
        stop = base + n2
        n2 = 0
    ptr32(scr - 4)[0] = 128 * s


@micropython.viper
def _depthwise(p: ptr8, q: ptr8, a: ptr32, rec: int):
    # p: the blob, q: the rings, a: the program words, rec: the op's word index.
    # Accumulators (_ACC0 + sum of int8 weight x uint8 input over the last K frames of
    # channels c0 ..) -> scratch, frame by frame; CORR = _ACC0.
    ws = uint(a)
    r = ptr32(ws + 4 * rec)
    b = ptr32(ws + 4 * r[_O_SRC])
    stride = b[_B_STRIDE]
    frames = b[_B_FRAMES]
    k = r[_O_FRAMES]
    slot = b[_B_LAST] - k + 1
    if slot < 0:
        slot += frames
    base = uint(q) + b[_B_BASE] + r[_O_C0]
    cout = r[_O_COUT]
    w = uint(p) + r[_O_W]
    scr = ws + 4 * ptr32(ws)[_H_WORDS]
    ptr32(scr)[0] = _ACC0
    scr += 4
    end = scr + 4 * cout
    end8 = scr + 4 * (cout & -8)
    a = ptr32(scr)
    while uint(a) < end:
        a[0] = _ACC0
        a = ptr32(uint(a) + 4)
    f = 0
    while f < k:
        p = ptr8(w)
        q = ptr8(base + slot * stride)
        a = ptr32(scr)
        while uint(a) < end8:  # ReLU outputs (uint8 0) are often zero: skip those
            if q[0]:
                a[0] = (p[0] - 128) * q[0] + a[0]
            if q[1]:
                a[1] = (p[1] - 128) * q[1] + a[1]
            if q[2]:
                a[2] = (p[2] - 128) * q[2] + a[2]
            if q[3]:
                a[3] = (p[3] - 128) * q[3] + a[3]
            if q[4]:
                a[4] = (p[4] - 128) * q[4] + a[4]
            if q[5]:
                a[5] = (p[5] - 128) * q[5] + a[5]
            if q[6]:
                a[6] = (p[6] - 128) * q[6] + a[6]
            if q[7]:
                a[7] = (p[7] - 128) * q[7] + a[7]
            a = ptr32(uint(a) + 32)
            p = ptr8(uint(p) + 8)
            q = ptr8(uint(q) + 8)
        if cout & 4:
            if q[0]:
                a[0] = (p[0] - 128) * q[0] + a[0]
            if q[1]:
                a[1] = (p[1] - 128) * q[1] + a[1]
            if q[2]:
                a[2] = (p[2] - 128) * q[2] + a[2]
            if q[3]:
                a[3] = (p[3] - 128) * q[3] + a[3]
        w += cout
        slot += 1
        if slot == frames:
            slot = 0
        f += 1


@micropython.viper
def _requantise(a: ptr32, x: int, par: ptr32, q: ptr8):
    # a: the program words, x: the op's word index, par: the blob, q: the rings.
    # Scratch accumulators - CORR + bias -> MultiplyByQuantizedMultiplier + zero point,
    # clamped -> the op's output frame (uint8). With M = 2**30 + w and s the right shift,
    # X = floor(acc M / 2**30) and MBQM = (X + 2**s + 1 - 2 [X < -1]) >> (s + 1): the two
    # roundings of SaturatingRoundingDoublingHighMul and RoundingDivideByPOT in one shift.
    # With _ROUND_ONCE (BUILTIN_REF's FULLY_CONNECTED): (X + 2**s) >> (s + 1).
    ws = uint(a)
    r = ptr32(ws + 4 * x)
    d = ptr32(ws + 4 * r[_O_DST])
    out = uint(q) + d[_B_BASE] + d[_B_LAST] * d[_B_STRIDE] + r[_O_DOFF]
    a = ptr32(ws + 4 * ptr32(ws)[_H_WORDS])
    corr = a[0] + _BIAS_OFFSET
    a = ptr32(uint(a) + 4)
    par = ptr32(uint(par) + r[_O_PAR])
    zp = r[_O_ZP]
    lo = r[_O_LO]
    hi = r[_O_HI]
    relu = -_ACC0  # with a ReLU (lo = zp), any acc <= 0 gives lo
    if lo == zp:
        relu = 0
    twice = 1  # 0: one rounding (_ROUND_ONCE)
    if r[_O_KIND] & _ROUND_ONCE:
        twice = 0
    end = uint(a) + 4 * r[_O_COUT]
    while uint(a) < end:
        x = a[0] + (par[1] >> 5) - corr
        if x > relu:
            al = x & 0x7FFF
            x += (x >> 15) * ptr16(par)[1] + (((x >> 15) * ptr16(par)[0] + al * ptr16(par)[1]
                                               + ((al * ptr16(par)[0]) >> 15)) >> 15)
            if x < -1:
                x -= twice << 1
            w = par[1] & 31
            x = ((x + (1 << w) + twice) >> (w + 1)) + zp
            if x < lo:
                x = lo
            elif x > hi:
                x = hi
        else:
            x = lo
        ptr8(out)[0] = x
        out += 1
        a = ptr32(uint(a) + 4)
        par = ptr32(uint(par) + 8)


@micropython.viper
def _output(p: ptr8, q: ptr8, ws: ptr32) -> int:
    # the logistic table at the output ring's one value: the probability, uint8
    b = ptr32(uint(ws) + 4 * ws[_H_OUTBUF])
    return p[ws[_H_TABLE] + q[b[_B_BASE]]]
