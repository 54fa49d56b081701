# TFLite Micro's audio microfrontend as pymicro-features 2.0.2 configures it, integer only,
# in viper, nothing allocated per step. Its output equals pymicro_features.MicroFrontend's
# value for value (uint16 per channel; pymicro-features returns them x 0.0390625).
#   Frontend().step(buf, at): 160 s16 samples (10 ms at 16 kHz) at byte `at` of buf;
#   True when .out (array('H') of 40) holds a new vector: from the 3rd step on, every step.
# The C code (tensorflow/lite/experimental/microfrontend/lib/, kissfft FIXED_POINT 16),
# step by step, with the same roundings and the same int16 wraps:
#   window   w = (s * WINDOW) >> 12 over the last 480 samples; shift = 15 - bitlen(max |w|)
#            (a w of -32768 does not count: C's int16 abs leaves it negative)
#   FFT      x = int16(w << shift), zero-padded to 512; kiss_fftr: a 256-point complex
#            FFT of z[n] = x[2n] + i x[2n+1], 4 radix-4 stages (each input / 4 as
#            (v 8191 + 2**14) >> 15, twiddles Q15 rounded as (p + 2**14) >> 15, int16
#            results), then the split into bins 0..256 with the super twiddles
#   energy   re**2 + im**2 of bins 5..240 (< 2**31)
#   fbank    40 channels, Q12 weights (the unweight is 4096 - weight), 64-bit sums,
#            rounded square root (Sqrt64 / Sqrt32), >> shift
#   noise    estimate += (S << 10 - estimate) * (409 or 983) >> 14 per channel; out =
#            max((S << 10 - min(estimate, S << 10)) >> 10, S * 819 >> 14)
#   PCAN     gain = WideDynamicFunction(estimate) (LUT), snr = S * gain >> 6, shrink
#   log      ((45426 log2(v << 3) in Q16, rounded) << 6 + 2**15) >> 16, clamped to u16
# 64-bit quantities are 32-bit limbs here; every viper intermediate stays within signed
# 32 bits (bounds in the comments), so the ESP32 computes what the 64-bit unix port does.
# Not emulated: C's uint32 wrap of S << 10 in the noise reduction, reachable only with a
# channel root S >= 2**21, i.e. a filterbank sum >= 2**42; a window's energy (Parseval)
# keeps every sum below 4.2e12 < 2**42 unless kissfft's int16 stages overflowed, which
# needs a window built for it (their wraps themselves are kept).
#
# Speed (counted in x86 instructions of the unix port): viper keeps the first three locals
# of a function in registers and the rest in stack slots, and moves every operand through
# fixed registers; a kernel is cheapest when its hot pointer and two scratch values are
# those three and its tables sit at fixed offsets from the data it walks. So tables,
# scratch and state share one buffer: the first frontend uses the one the module fills at
# import, later ones get a copy. 16-bit values are stored + 32768 (viper loads
# zero-extend): a store truncates to 16 bits, which is C's int16 wrap, and the bias folds
# into the constants. The shift is known before the window is computed (from the max |s|
# of every 10-sample cell, kept as the samples arrive), so the window, the scaling and the
# FFT's first stage are one pass.
import sys
from array import array

import micropython
from micropython import const

CHANNELS = const(40)
STEP = const(160)

_B = const(32768)
_CB = const(805355520)  # (u 8191 + _CB) >> 15: u = x + 32768 -> (x 8191 + 2**14 >> 15) + 32768
_CU = const(-268386304)  # (u 8191 + _CU) >> 15: u = x + 32768 -> (x 8191 + 2**14) >> 15
_CU2 = const(-536821760)  # (u 16383 + _CU2) >> 15: u = x + 32768 -> (x 16383 + 2**14) >> 15
# the workspace (byte offsets): tables, scratch and state at fixed offsets from each other
_F = const(0)  # 256 x (re, im) u16 + 32768: the complex FFT; then bin b's energy
#                (lo16, hi) at 4 b
_T1 = const(1024)  # (cos, -sin) of W^k, k = 0..63 (both >= 0)
_T2 = const(1280)  # (cos, sin) + 32768 of W^2k
_T3 = const(1536)  # (cos, sin) + 32768 of W^3k
_SUP = const(1792)  # (-cos, -sin) (both >= 0) of the split's twiddle of k = 0..128
_FBW = const(2308)  # the filterbank weight of bin b at 4 b (b = 5..240)
_WIN = const(3272)  # state: the last 480 samples + 32768, oldest first (then 32 unused)
_COEF = const(4296)  # the window (Q12) of sample n = 0..511 at 2 n (480..511: 0)
_REV = const(5320)  # at 4 r, r = 0..63: where stage 1 writes (_F + 16 rev4(r))
_CM = const(5576)  # state: (P, N) at 4 j: max s >= 0 and max -s > 0 (else 0) over each
#                   10-sample cell j of the window
_CELL = const(5768)  # (min, max) of the window over each cell
_FIRST = const(5960)  # u8: first bin of channels 0..40, then 241
_BL = const(6002)  # u8: bit length of 0..255
_PCAN = const(6258)  # the PCAN gain LUT (see its literal)
_LOG = const(6508)  # kLogLut
_SQRT = const(6768)  # Newton seeds for isqrt over [2**28, 2**30)
_WORK = const(7168)  # per channel, 16 bytes (after a slot for channel -1): the filterbank's
#                      64-bit sum (lo16, hi), the noise estimate (state), the smoothing
_K = const(7808)  # i32: the step's shift (the square root undoes it)
_N = const(7824)  # i32, state: steps since reset (<= 3)
_WSSIZE = const(7828)
# the same offsets seen from a pointer that walks the FFT points, the window, the cells (u16)
_P1 = const(512)
_P2 = const(640)
_P3 = const(768)
_PS = const(896)  # _SUP - _F
_PW = const(1154)  # _FBW - _F
_D2 = const(128)  # _T2 - _T1
_D3 = const(256)  # _T3 - _T1
_PC = const(512)  # _COEF - _WIN
_PR = const(1024)  # _REV - _WIN
_PM = const(96)  # _CELL - _CM

# The tables (frontend_data.py) go into a workspace at import; their hex strings are freed
# after it. The first Frontend works in that one, later ones in copies.
_WS = bytearray(_WSSIZE)


def _put(at, step, size, hexs):
    b = bytes.fromhex(hexs)
    for i in range(0, len(b), size):
        _WS[at:at + size] = b[i:i + size]
        at += step


def _load_tables():
    from earshot import frontend_data as t

    _put(_COEF, 2, 2, t.WINDOW)
    _put(_T1, 2, 2, t.T1)
    _put(_T2, 2, 2, t.T2)
    _put(_T3, 2, 2, t.T3)
    _put(_SUP, 2, 2, t.SUPER)
    _put(_FBW + 20, 4, 2, t.FB_WEIGHT)
    _put(_FIRST, 1, 1, t.FB_FIRST)
    _put(_PCAN, 2, 2, t.PCAN)
    _put(_LOG, 2, 2, t.LOG)
    _put(_SQRT, 2, 2, t.SQRT)
    sys.modules.pop("earshot.frontend_data")
    earshot = sys.modules["earshot"]
    if hasattr(earshot, "frontend_data"):
        delattr(earshot, "frontend_data")


_load_tables()






def _derived():
    for j in range(64):  # stage 1 writes z's of r to 4 rev4(r) .. + 3 (16 bytes each)
        v = _F + 16 * (((j & 3) << 4) | (j & 12) | (j >> 4))
        _WS[_REV + 4 * j] = v & 255
        _WS[_REV + 4 * j + 1] = v >> 8
    for j in range(48):
        cs = [_WS[_COEF + 2 * n] | (_WS[_COEF + 2 * n + 1] << 8) for n in range(10 * j, 10 * j + 10)]
        for k, v in enumerate((min(cs), max(cs))):
            _WS[_CELL + 4 * j + 2 * k] = v & 255
            _WS[_CELL + 4 * j + 2 * k + 1] = v >> 8
    for i in range(1, 256):
        _WS[_BL + i] = len(bin(i)) - 2
    for i in range(CHANNELS):  # noise_reduction_util.cc: 0.025, 0.06 x 2**14 as uint16
        _WS[_WORK + 16 * i + 12:_WORK + 16 * i + 14] = (983 if i & 1 else 409).to_bytes(2, "little")


_derived()
_taken = False


class Frontend:
    def __init__(self):
        global _taken
        self._ws = bytearray(_WS) if _taken else _WS
        _taken = True
        self.out = array("H", bytes(2 * CHANNELS))
        self.reset()

    def reset(self):
        # FrontendReset: an empty window, zero noise estimates
        _reset(self._ws)

    @micropython.native  # bytecode would heap-allocate the call's frame
    def step(self, buf, at):
        ws = self._ws
        if _ingest(ws, at, 0, buf) < 3:
            return False
        sh = _shift(ws, 0, 0)
        if sh < 0:
            sh = _slow(ws, 0, 0)
        _stage1(ws, sh, 0)
        if sh > 255:
            _unpatch(ws, sh, 0)
        _fft(ws, 0, 0)
        _spectrum(ws, ws, 0)
        _tail(ws, 0, 0, self.out)
        return True


@micropython.viper
def _reset(ws: ptr32):
    ws[_N // 4] = 0
    e = ptr32(uint(ws) + _WORK + 8)
    i = 0
    while i < CHANNELS:
        e[4 * i] = 0
        i += 1


@micropython.viper
def _ingest(q: ptr16, mx: int, mn: int, s: ptr32) -> int:
    # Moves the window on by a step: samples 160..479 to 0..319 and the step's 160 (s16
    # at byte mx of s) + 32768 to 320..479; the cells 16..47 to 0..31 and the new ones'
    # (P, N) to 32..47. Returns the steps seen since reset (<= 3).
    ws = uint(q)
    s = ptr32(uint(s) + mx)
    q = ptr16(ws + _WIN)
    end = ws + _WIN + 640
    while uint(q) < end:
        ptr32(q)[0] = ptr32(q)[80]
        ptr32(q)[1] = ptr32(q)[81]
        ptr32(q)[2] = ptr32(q)[82]
        ptr32(q)[3] = ptr32(q)[83]
        ptr32(q)[4] = ptr32(q)[84]
        ptr32(q)[5] = ptr32(q)[85]
        ptr32(q)[6] = ptr32(q)[86]
        ptr32(q)[7] = ptr32(q)[87]
        q = ptr16(uint(q) + 32)
    mx = 0x8000
    mx |= mx << 16  # 0x80008000 at run time (no small int on a 32-bit port)
    end = ws + _WIN + 960
    while uint(q) < end:
        ptr32(q)[0] = s[0] ^ mx
        ptr32(q)[1] = s[1] ^ mx
        ptr32(q)[2] = s[2] ^ mx
        ptr32(q)[3] = s[3] ^ mx
        ptr32(q)[4] = s[4] ^ mx
        q = ptr16(uint(q) + 20)
        s = ptr32(uint(s) + 20)
    q = ptr16(ws + _CM)
    end = ws + _CM + 128
    while uint(q) < end:
        ptr32(q)[0] = ptr32(q)[16]
        ptr32(q)[1] = ptr32(q)[17]
        ptr32(q)[2] = ptr32(q)[18]
        ptr32(q)[3] = ptr32(q)[19]
        ptr32(q)[4] = ptr32(q)[20]
        ptr32(q)[5] = ptr32(q)[21]
        ptr32(q)[6] = ptr32(q)[22]
        ptr32(q)[7] = ptr32(q)[23]
        q = ptr16(uint(q) + 32)
    # each new cell's largest s >= 0 and -s > 0 (else 0)
    o = ptr16(ws + _CM + 128)
    q = ptr16(ws + _WIN + 640)
    end = uint(q) + 320
    while uint(q) < end:
        mx = int(q[0])
        mn = mx
        if int(q[1]) > mx:
            mx = int(q[1])
        elif int(q[1]) < mn:
            mn = int(q[1])
        if int(q[2]) > mx:
            mx = int(q[2])
        elif int(q[2]) < mn:
            mn = int(q[2])
        if int(q[3]) > mx:
            mx = int(q[3])
        elif int(q[3]) < mn:
            mn = int(q[3])
        if int(q[4]) > mx:
            mx = int(q[4])
        elif int(q[4]) < mn:
            mn = int(q[4])
        if int(q[5]) > mx:
            mx = int(q[5])
        elif int(q[5]) < mn:
            mn = int(q[5])
        if int(q[6]) > mx:
            mx = int(q[6])
        elif int(q[6]) < mn:
            mn = int(q[6])
        if int(q[7]) > mx:
            mx = int(q[7])
        elif int(q[7]) < mn:
            mn = int(q[7])
        if int(q[8]) > mx:
            mx = int(q[8])
        elif int(q[8]) < mn:
            mn = int(q[8])
        if int(q[9]) > mx:
            mx = int(q[9])
        elif int(q[9]) < mn:
            mn = int(q[9])
        mx -= _B
        if mx < 0:  # no sample >= 0
            mx = 0
        mn = _B - mn
        if mn < 0:  # none < 0
            mn = 0
        o[0] = mx
        o[1] = mn
        o = ptr16(uint(o) + 4)
        q = ptr16(uint(q) + 20)
    n = ptr32(ws + _N)
    mx = n[0]
    if mx < 3:
        mx += 1
        n[0] = mx
    return mx


@micropython.viper
def _shift(q: ptr16, hi: int, lo: int) -> int:
    # The shift from the cells (P, N: a cell's largest s >= 0 and largest -s > 0): every
    # |w| there is at most ceil(max(P, N) cmax / 4096), and the samples that have P and N
    # give |w| of at least floor(P cmin / 4096) and ceil(N cmin / 4096) (w rounds down).
    # Unless -32768 sits where the window is 4096 (samples 238..241; C leaves that w out
    # of the max), every |w| <= 32767. When the largest bound and the largest floor have
    # the same bit length b, that is max |w|'s; else the window's samples in the cells
    # whose bound reaches 2**(b - 1) are looked at. Returns -1 when that does not settle
    # it either, or for a -32768 at 238..241 unless the shift is 0 anyway.
    ws = uint(q)
    bl = ptr8(ws + _BL)
    q = ptr16(ws + _WIN + 476)  # samples 238..241
    x = 0
    if int(q[0]) == 0 or int(q[1]) == 0 or int(q[2]) == 0 or int(q[3]) == 0:
        x = 1  # left out of the lower bounds: N of cells 23 and 24
    q = ptr16(ws + _CM)
    n23 = int(q[47])
    n24 = int(q[49])
    if x:
        q[47] = 0
        q[49] = 0
    end = uint(q) + 192
    ln = 0
    while uint(q) < end:
        p = int(q[0])
        n = int(q[1])
        if p * int(q[_PM]) > lo:
            lo = p * int(q[_PM])
        if n * int(q[_PM]) > ln:
            ln = n * int(q[_PM])
        if p > n:
            n = p
        if n * int(q[_PM + 1]) > hi:
            hi = n * int(q[_PM + 1])
        q = ptr16(uint(q) + 4)
    q = ptr16(ws + _CM)
    q[47] = n23
    q[49] = n24
    hi = (hi + 4095) >> 12
    if hi > 32767 or x:
        hi = 32767
    lo >>= 12
    ln = (ln + 4095) >> 12
    if ln > lo:
        lo = ln
    if hi >= 256:
        n = int(bl[hi >> 8]) + 8
    else:
        n = int(bl[hi])
    if lo >= 256:
        p = int(bl[lo >> 8]) + 8
    else:
        p = int(bl[lo])
    if n == p:
        if x and n < 15:
            return -1
        return 15 - n
    if x:
        return -1
    # bit length n or less: is some |w| >= 2**(n - 1)?
    lo = 1 << (n - 1)
    hi = lo << 12
    end = uint(q) + 192
    while uint(q) < end:
        m = int(q[0])
        if int(q[1]) > m:
            m = int(q[1])
        if m * int(q[_PM + 1]) + 4095 >= hi:
            s = ptr16(ws + _WIN + 5 * (uint(q) - ws - _CM))  # the cell's 10 samples
            e = uint(s) + 20
            while uint(s) < e:
                w = ((int(s[0]) - _B) * int(s[_PC])) >> 12
                if w >= lo or w <= 0 - lo:
                    return 15 - n
                s = ptr16(uint(s) + 2)
        q = ptr16(uint(q) + 4)
    if p == n - 1:
        return 16 - n
    return -1


@micropython.viper
def _slow(p: ptr16, o: int, w: int) -> int:
    # The exact shift: max |w| over the window, leaving out w = -32768 (s = -32768 where
    # the window is 4096, samples 238..241). If the shift is >= 1, such a w becomes 0
    # (int16(-32768 << shift)): those samples are set to 0 for stage 1, and bits 8..11 of
    # the return value say which, for _unpatch.
    ws = uint(p)
    p = ptr16(ws + _WIN)
    end = uint(p) + 960
    while uint(p) < end:
        w = ((int(p[0]) - _B) * int(p[_PC])) >> 12
        if w < 0:
            w = 0 - w
        if w < 32768:
            o |= w
        p = ptr16(uint(p) + 2)
    bl = ptr8(ws + _BL)
    if o >= 256:
        w = 7 - int(bl[o >> 8])
    else:
        w = 15 - int(bl[o])
    if w > 0:
        p = ptr16(ws + _WIN)
        o = 238
        while o < 242:
            if int(p[o]) == 0:
                p[o] = _B
                w |= 256 << (o - 238)
            o += 1
    return w


@micropython.viper
def _unpatch(p: ptr16, sh: int, i: int):
    p = ptr16(uint(p) + _WIN)
    i = 238
    while i < 242:
        if sh & (256 << (i - 238)):
            p[i] = 0
        i += 1


@micropython.viper
def _stage1(p: ptr16, k1: int, u: int):
    # The window, the shift (k1 & 255) and kissfft's first radix-4 stage in one pass: for
    # r = 0..63, z[r], z[r + 64], z[r + 128], z[r + 192] (z[n] = x[2n] + i x[2n+1]),
    # each / 4, and the butterfly (its unit twiddle 32767 is exact on values <= 2**13)
    # to positions 4 rev4(r) .. + 3. p walks the samples; the window and the output
    # offsets sit at fixed offsets from them. x / 4 for x = w << shift is computed as
    # (w 8191 + k1) >> rs, k1 = 2**14 >> shift, rs = 15 - shift (shift <= 14; 15 only for
    # an all-zero window); + 32768 with k0.
    ws = uint(p)
    k1 &= 255
    ptr32(ws + _K)[0] = k1  # for the square root
    if k1 > 14:
        k1 = 14
    rs = 15 - k1
    k1 = 16384 >> k1
    k0 = k1 + (_B << rs)
    p = ptr16(ws + _WIN)
    end = uint(p) + 256
    while uint(p) < end:
        a0r = (((((int(p[0]) - _B) * int(p[_PC])) >> 12) * 8191) + k0) >> rs
        a0i = (((((int(p[1]) - _B) * int(p[_PC + 1])) >> 12) * 8191) + k0) >> rs
        a2r = (((((int(p[256]) - _B) * int(p[_PC + 256])) >> 12) * 8191) + k1) >> rs
        a2i = (((((int(p[257]) - _B) * int(p[_PC + 257])) >> 12) * 8191) + k1) >> rs
        a1r = (((((int(p[128]) - _B) * int(p[_PC + 128])) >> 12) * 8191) + k1) >> rs
        a1i = (((((int(p[129]) - _B) * int(p[_PC + 129])) >> 12) * 8191) + k1) >> rs
        a3r = (((((int(p[384]) - _B) * int(p[_PC + 384])) >> 12) * 8191) + k1) >> rs
        a3i = (((((int(p[385]) - _B) * int(p[_PC + 385])) >> 12) * 8191) + k1) >> rs
        o = ptr16(ws + int(p[_PR]))
        u = a0r + a2r
        v = a1r + a3r
        o[0] = u + v
        o[4] = u - v
        u = a0i + a2i
        v = a1i + a3i
        o[1] = u + v
        o[5] = u - v
        u = a0r - a2r
        v = a1i - a3i
        o[2] = u + v
        o[6] = u - v
        u = a0i - a2i
        v = a1r - a3r
        o[3] = u - v
        o[7] = u + v
        p = ptr16(uint(p) + 4)

@micropython.viper
def _fft(p: ptr16, u: int, v: int):
    # kissfft's radix-4 stages 2..4 (quarter 4, 16, 64) on the points stage 1 wrote.
    ws = uint(p)
    # kissfft's radix-4 stage of quarter 4 (fstride 16) on every group of 16 points; its
    # twiddles (W^16k, W^32k, W^48k, k = 0..3) are constants here.
    end = uint(p) + _F + 1024
    p = ptr16(uint(p) + _F)
    while uint(p) < end:
        b1r = (int(p[8]) * 8191 + _CU) >> 15
        b1i = (int(p[9]) * 8191 + _CU) >> 15
        b2r = (int(p[16]) * 8191 + _CU) >> 15
        b2i = (int(p[17]) * 8191 + _CU) >> 15
        b3r = (int(p[24]) * 8191 + _CU) >> 15
        b3i = (int(p[25]) * 8191 + _CU) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[0] = u + v
        p[16] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[1] = u + v
        p[17] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[8] = u + v
        p[24] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[9] = u - v
        p[25] = u + v
        u = (int(p[10]) * 8191 + _CU) >> 15
        v = (int(p[11]) * 8191 + _CU) >> 15
        b1r = (u * 30273 + v * 12539 + 16384) >> 15
        b1i = (v * 30273 - u * 12539 + 16384) >> 15
        u = (int(p[18]) * 8191 + _CU) >> 15
        v = (int(p[19]) * 8191 + _CU) >> 15
        b2r = ((u + v) * 23170 + 16384) >> 15
        b2i = ((v - u) * 23170 + 16384) >> 15
        u = (int(p[26]) * 8191 + _CU) >> 15
        v = (int(p[27]) * 8191 + _CU) >> 15
        b3r = (u * 12539 + v * 30273 + 16384) >> 15
        b3i = (v * 12539 - u * 30273 + 16384) >> 15
        a0r = (int(p[2]) * 8191 + _CB) >> 15
        a0i = (int(p[3]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[2] = u + v
        p[18] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[3] = u + v
        p[19] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[10] = u + v
        p[26] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[11] = u - v
        p[27] = u + v
        u = (int(p[12]) * 8191 + _CU) >> 15
        v = (int(p[13]) * 8191 + _CU) >> 15
        b1r = ((u + v) * 23170 + 16384) >> 15
        b1i = ((v - u) * 23170 + 16384) >> 15
        u = (int(p[20]) * 8191 + _CU) >> 15
        v = (int(p[21]) * 8191 + _CU) >> 15
        b2r = v
        b2i = 0 - u
        u = (int(p[28]) * 8191 + _CU) >> 15
        v = (int(p[29]) * 8191 + _CU) >> 15
        b3r = ((u - v) * -23170 + 16384) >> 15
        b3i = ((u + v) * -23170 + 16384) >> 15
        a0r = (int(p[4]) * 8191 + _CB) >> 15
        a0i = (int(p[5]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[4] = u + v
        p[20] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[5] = u + v
        p[21] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[12] = u + v
        p[28] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[13] = u - v
        p[29] = u + v
        u = (int(p[14]) * 8191 + _CU) >> 15
        v = (int(p[15]) * 8191 + _CU) >> 15
        b1r = (u * 12539 + v * 30273 + 16384) >> 15
        b1i = (v * 12539 - u * 30273 + 16384) >> 15
        u = (int(p[22]) * 8191 + _CU) >> 15
        v = (int(p[23]) * 8191 + _CU) >> 15
        b2r = ((u - v) * -23170 + 16384) >> 15
        b2i = ((u + v) * -23170 + 16384) >> 15
        u = (int(p[30]) * 8191 + _CU) >> 15
        v = (int(p[31]) * 8191 + _CU) >> 15
        b3r = (0 - u * 30273 - v * 12539 + 16384) >> 15
        b3i = (u * 12539 - v * 30273 + 16384) >> 15
        a0r = (int(p[6]) * 8191 + _CB) >> 15
        a0i = (int(p[7]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[6] = u + v
        p[22] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[7] = u + v
        p[23] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[14] = u + v
        p[30] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[15] = u - v
        p[31] = u + v
        p = ptr16(uint(p) + 64)
    p = ptr16(ws)
    # kissfft's radix-4 stage of quarter 16 (fstride 4): butterflies on z[g + k], z[g + k + 16],
    # z[g + k + 32], z[g + k + 48] for each group g of 64 points; twiddles W^4k, W^8k, W^12k.
    f = uint(p) + _F
    end = f + 1024
    t = ptr16(uint(p) + _T1)
    p = ptr16(f)
    while uint(p) < end:  # k = 0: unit twiddles (exact on values <= 2**13)
        b1r = (int(p[32]) * 8191 + _CU) >> 15
        b1i = (int(p[33]) * 8191 + _CU) >> 15
        b2r = (int(p[64]) * 8191 + _CU) >> 15
        b2i = (int(p[65]) * 8191 + _CU) >> 15
        b3r = (int(p[96]) * 8191 + _CU) >> 15
        b3i = (int(p[97]) * 8191 + _CU) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[0] = u + v
        p[64] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[1] = u + v
        p[65] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[32] = u + v
        p[96] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[33] = u - v
        p[97] = u + v
        p = ptr16(uint(p) + 256)
    k = 1
    while k < 16:
        t = ptr16(uint(t) + 16)
        c1 = int(t[0])
        n1 = int(t[1])
        c2 = int(t[_D2]) - _B
        s2 = int(t[_D2 + 1]) - _B
        c3 = int(t[_D3]) - _B
        s3 = int(t[_D3 + 1]) - _B
        p = ptr16(f + 4 * k)
        while uint(p) < end:
            u = (int(p[32]) * 8191 + _CU) >> 15
            v = (int(p[33]) * 8191 + _CU) >> 15
            b1r = (u * c1 + v * n1 + 16384) >> 15
            b1i = (v * c1 - u * n1 + 16384) >> 15
            u = (int(p[64]) * 8191 + _CU) >> 15
            v = (int(p[65]) * 8191 + _CU) >> 15
            b2r = (u * c2 - v * s2 + 16384) >> 15
            b2i = (u * s2 + v * c2 + 16384) >> 15
            u = (int(p[96]) * 8191 + _CU) >> 15
            v = (int(p[97]) * 8191 + _CU) >> 15
            b3r = (u * c3 - v * s3 + 16384) >> 15
            b3i = (u * s3 + v * c3 + 16384) >> 15
            a0r = (int(p[0]) * 8191 + _CB) >> 15
            a0i = (int(p[1]) * 8191 + _CB) >> 15
            u = a0r + b2r
            v = b1r + b3r
            p[0] = u + v
            p[64] = u - v
            u = a0i + b2i
            v = b1i + b3i
            p[1] = u + v
            p[65] = u - v
            u = a0r - b2r
            v = b1i - b3i
            p[32] = u + v
            p[96] = u - v
            u = a0i - b2i
            v = b1r - b3r
            p[33] = u - v
            p[97] = u + v
            p = ptr16(uint(p) + 256)
        k += 1
    p = ptr16(ws)
    # kissfft's last radix-4 stage (quarter 64, fstride 1): butterflies on z[k], z[k + 64],
    # z[k + 128], z[k + 192]; the twiddles of k sit at fixed offsets from z[k].
    end = uint(p) + _F + 256
    p = ptr16(uint(p) + _F)
    b1r = (int(p[128]) * 8191 + _CU) >> 15
    b1i = (int(p[129]) * 8191 + _CU) >> 15
    b2r = (int(p[256]) * 8191 + _CU) >> 15
    b2i = (int(p[257]) * 8191 + _CU) >> 15
    b3r = (int(p[384]) * 8191 + _CU) >> 15
    b3i = (int(p[385]) * 8191 + _CU) >> 15
    a0r = (int(p[0]) * 8191 + _CB) >> 15
    a0i = (int(p[1]) * 8191 + _CB) >> 15
    u = a0r + b2r
    v = b1r + b3r
    p[0] = u + v
    p[256] = u - v
    u = a0i + b2i
    v = b1i + b3i
    p[1] = u + v
    p[257] = u - v
    u = a0r - b2r
    v = b1i - b3i
    p[128] = u + v
    p[384] = u - v
    u = a0i - b2i
    v = b1r - b3r
    p[129] = u - v
    p[385] = u + v
    p = ptr16(uint(p) + 4)
    while uint(p) < end:
        u = (int(p[128]) * 8191 + _CU) >> 15
        v = (int(p[129]) * 8191 + _CU) >> 15
        b1r = (u * int(p[_P1]) + v * int(p[_P1 + 1]) + 16384) >> 15
        b1i = (v * int(p[_P1]) - u * int(p[_P1 + 1]) + 16384) >> 15
        u = (int(p[256]) * 8191 + _CU) >> 15
        v = (int(p[257]) * 8191 + _CU) >> 15
        b2r = (u * (int(p[_P2]) - _B) - v * (int(p[_P2 + 1]) - _B) + 16384) >> 15
        b2i = (u * (int(p[_P2 + 1]) - _B) + v * (int(p[_P2]) - _B) + 16384) >> 15
        u = (int(p[384]) * 8191 + _CU) >> 15
        v = (int(p[385]) * 8191 + _CU) >> 15
        b3r = (u * (int(p[_P3]) - _B) - v * (int(p[_P3 + 1]) - _B) + 16384) >> 15
        b3i = (u * (int(p[_P3 + 1]) - _B) + v * (int(p[_P3]) - _B) + 16384) >> 15
        a0r = (int(p[0]) * 8191 + _CB) >> 15
        a0i = (int(p[1]) * 8191 + _CB) >> 15
        u = a0r + b2r
        v = b1r + b3r
        p[0] = u + v
        p[256] = u - v
        u = a0i + b2i
        v = b1i + b3i
        p[1] = u + v
        p[257] = u - v
        u = a0r - b2r
        v = b1i - b3i
        p[128] = u + v
        p[384] = u - v
        u = a0i - b2i
        v = b1r - b3r
        p[129] = u - v
        p[385] = u + v
        p = ptr16(uint(p) + 4)


@micropython.viper
def _spectrum(q: ptr16, r: ptr16, x: int):
    # kiss_fftr's split for k = 5..128: Z[k] (q) and conj Z[256 - k] (r), each / 2, into
    # bins k and 256 - k, whose energies (< 2**31) overwrite those two points (for
    # k = 128 C keeps the second formula, written last here). C's int16 wraps are kept:
    # -Z.i, and the twiddled difference. The twiddle (c, s) is stored as (-c, -s).
    # Then the filterbank.
    ws = uint(q)
    end = uint(q) + _F + 516
    q = ptr16(uint(q) + _F + 20)
    r = ptr16(uint(r) + _F + 1004)
    while uint(q) < end:
        pr = (int(q[0]) * 16383 + _CU2) >> 15
        nr = (int(r[0]) * 16383 + _CU2) >> 15
        x = (int(q[1]) * 16383 + _CU2) >> 15
        ni = (((65536 - int(r[1])) & 0xFFFF) * 16383 + _CU2) >> 15
        di = x - ni
        pi = x + ni
        x = pr - nr
        pr += nr
        # |x|, |di| <= 32766: the products' sum < 2**31, as C's int32 sum
        tr = ((((di * int(q[_PS + 1]) - x * int(q[_PS]) + 16384) >> 15) + _B) & 0xFFFF) - _B
        ti = (((16384 - x * int(q[_PS + 1]) - di * int(q[_PS])) >> 15) + _B & 0xFFFF) - _B
        x = (pi + ti) >> 1
        x *= x
        nr = (pr + tr) >> 1
        x += nr * nr
        q[0] = x
        q[1] = x >> 16
        x = (ti - pi) >> 1
        x *= x
        nr = (pr - tr) >> 1
        x += nr * nr
        r[0] = x
        r[1] = x >> 16
        q = ptr16(uint(q) + 4)
        r = ptr16(uint(r) - 4)
    # The filterbank. Per channel c: A = sum weight m, M = sum m over its bins (m = hi
    # 2**16 + lo, summed per limb: weight sums <= 29817, so weight lo < 2**31). Channel
    # c - 1's 64-bit sum is A_c + sum (4096 - weight) m over the bins of c - 1
    # = A_c + 4096 M_(c-1) - A_(c-1), stored as (lo16, hi), hi < 2**31 (4096 M_(c-1) -
    # A_(c-1) = sum (4096 - weight) hi 2**16 + ..., each part < 2**31). Bins go two at a
    # time, an odd one first. q walks the bins, r the sums (as i32), x is A's low part.
    f = ptr8(ws + _FIRST)
    r = ptr16(ws + _WORK - 16)
    q = ptr16(ws + _F + 20)
    pal = 0
    pah = 0
    pml = 0
    pmh = 0
    while uint(r) < ws + _WORK + 640:
        n = int(f[1]) - int(f[0])
        end = uint(q) + 4 * n
        if n & 1:
            x = int(q[_PW]) * int(q[0])
            ah = int(q[_PW]) * int(q[1])
            ml = int(q[0])
            mh = int(q[1])
            q = ptr16(uint(q) + 4)
        else:
            x = 0
            ah = 0
            ml = 0
            mh = 0
        while uint(q) < end:
            x += int(q[_PW]) * int(q[0]) + int(q[_PW + 2]) * int(q[2])
            ah += int(q[_PW]) * int(q[1]) + int(q[_PW + 2]) * int(q[3])
            ml += int(q[0]) + int(q[2])
            mh += int(q[1]) + int(q[3])
            q = ptr16(uint(q) + 8)
        lo = x - pal
        pal = x
        x = (pmh << 12) - pah + ah + ((pml >> 16) << 12) + (lo >> 16)
        lo = (lo & 0xFFFF) + ((pml & 0xFFFF) << 12)
        pah = ah
        pml = ml
        pmh = mh
        ptr32(r)[0] = lo & 0xFFFF
        ptr32(r)[1] = x + (lo >> 16)
        r = ptr16(uint(r) + 16)
        f = ptr8(uint(f) + 1)


@micropython.viper
def _tail(w: ptr32, v: int, t: int, out: ptr16):
    # Per channel (w walks the sums and the noise estimates): the square root, noise
    # reduction, PCAN and the log.
    ws = uint(w)
    bl = ptr8(ws + _BL)
    seed = ptr16(ws + _SQRT - 128)
    lut = ptr16(ws + _PCAN)
    lg = ptr16(ws + _LOG)
    sh = int(ptr32(ws + _K)[0])
    w = ptr32(ws + _WORK)
    end = ws + _WORK + 640
    while uint(w) < end:
        # Sqrt64(n), n = hi 2**16 + lo: floor sqrt, + 1 when the remainder exceeds it
        # (Sqrt32, below 2**32, stops at 65535). n is normalised into [2**28, 2**30) by an
        # even shift, one Newton step from a table seed gives that part's isqrt; for
        # n >= 2**30 a Newton step on the exact remainder and an exact check in 12-bit
        # limbs give the rest.
        lo = int(w[0])
        hi = int(w[1])
        if hi < 16384:
            v = (hi << 16) | lo
            if hi >= 4096:
                t = int(seed[v >> 22])
                t = (t + v // t) >> 1
                if t * t > v:
                    t -= 1
                if v - t * t > t:
                    t += 1
            elif v == 0:
                t = 0
            else:
                t = v
                b = 0
                if t >= 65536:
                    t >>= 16
                    b = 16
                if t >= 256:
                    t >>= 8
                    b += 8
                e2 = (30 - b - int(bl[t])) & 30
                x = v << e2
                t = int(seed[x >> 22])
                t = (t + x // t) >> 1
                if t * t > x:
                    t -= 1
                t >>= e2 >> 1
                if v - t * t > t:
                    t += 1
        else:
            t = hi
            b = 16
            if t >= 65536:
                t >>= 16
                b = 32
            if t >= 256:
                t >>= 8
                b += 8
            e2 = (b + int(bl[t]) - 29) & 62
            if e2 <= 16:
                x = (hi << (16 - e2)) | (lo >> e2)
                nl = lo & ((1 << e2) - 1)
            else:
                x = hi >> (e2 - 16)
                nl = ((hi & ((1 << (e2 - 16)) - 1)) << 16) | lo
            t = int(seed[x >> 22])
            t = (t + x // t) >> 1
            if t * t > x:
                t -= 1
            b = e2 >> 1
            t = (t << b) + ((((x - t * t) << b) + (nl >> b)) // (t << 1))
            # t is isqrt(n), or isqrt(n) + 1 when sqrt(n) is within 2**-6 below that: then
            # n > isqrt(n)**2 + isqrt(n) and t is the rounded root already. The remainder
            # n - t**2 from 12-bit limbs of t (< 2**24):
            b = t >> 12
            x = t & 4095
            v = ((((hi - ((b * b) << 8)) << 4) - ((b * x) << 1)) << 12) + lo - x * x
            if v > t:
                t += 1
            if t > 65535 and hi < 65536:
                t = 65535
        v = t >> sh
        # noise reduction (v < 2**21, see the top: t = v << 10 < 2**31)
        t = v << 10
        e = int(w[2])
        sm = int(w[3])
        d = t - e
        e += (d >> 14) * sm + (((d & 16383) * sm) >> 14)
        w[2] = e
        v = (v * 819) >> 14
        if e < t:
            t = (t - e) >> 10
            if t > v:
                v = t
        # PCAN: gain = WideDynamicFunction(e) in [0, 32624]
        if e <= 2:
            g = int(lut[e])
        else:
            t = e
            n = 0
            if t >= 65536:
                t >>= 16
                n = 16
            if t >= 256:
                t >>= 8
                n += 8
            n += int(bl[t])
            if n < 11:
                f = (e << (11 - n)) & 0x3FF
            else:
                f = (e >> (n - 11)) & 0x3FF
            r = ptr16(uint(lut) + 8 * n - 12)  # this interval's y0, -a1, a2 + 32768
            g = (((int(r[2]) - _B) * f) >> 5) - (int(r[1]) << 5)
            g = ((g * f + 16384) >> 15) + int(r[0])
        v = (v >> 6) * g + (((v & 63) * g) >> 6)
        if v < 8192:
            v = (v * v) >> 20
        else:
            v = (v >> 6) - 64
        v <<= 3
        if v > 1:
            t = v
            n = 0
            if t >= 65536:
                t >>= 16
                n = 16
            if t >= 256:
                t >>= 8
                n += 8
            n += int(bl[t]) - 1
            v -= 1 << n
            if n < 16:
                v <<= 16 - n
            else:
                v >>= n - 16
            r = ptr16(uint(lg) + ((v >> 8) & 0x1FE))  # kLogLut[v >> 9]
            c = int(r[0])
            v += c + (((int(r[1]) - c) * (v & 511)) >> 16)
            # (45426 log2 + 2**15) >> 16 = 45426 n + (22713 f + 2**14) >> 15 (< 2**31)
            v = (45426 * n + 512 + ((v * 22713 + 16384) >> 15)) >> 10
            if v > 65535:
                v = 65535
        else:
            v = 0
        out[0] = v
        out = ptr16(uint(out) + 2)
        w = ptr32(uint(w) + 16)
