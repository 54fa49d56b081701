# The wake-word detector: a pure streaming class fed one PCM frame at a time.
#   process(buf, at) -> bool   True on the frame where the wake phrase is detected; the
#                              frame is 20 ms of s16 PCM at byte offset `at` of buf
#   score                      the last score (0-255), for logs and tuning
#   reset()                    forget the past (after the mic was off)
# NoDetector never fires (no model installed: push-to-talk only). WakeDetector runs
# features.py and the int8 model loaded by wakemodel.py. host_tools/wake/reference.py is
# the same computation in NumPy, bit for bit, and documents the integer maths:
#   every frame       h1 = clamp((b1 + W1 . x) >> s1, 0, 255), into a ring of 48 frames
#   every 2nd frame   h2 = clamp((b2 + W2 . ring, oldest first) >> s2, 0, 255)
#                     score = SIG[clamp(((b3 + W3 . h2) >> s3) + 128, 0, 255)]
#   decision          score >= cutoff, then 50 frames (1 s) of rest
# Weights are stored as w + 128 (viper loads bytes unsigned): every dot product is
# sum((w + 128) x) - 128 sum(x). W2 is stored transposed ([768][32]) so that layer 2 can
# run either way round: as 32 dot products (row order) when most of the ring is non-zero,
# or column by column, skipping the zero h1 values, when it is sparse (a ReLU layer's
# output usually is: about half the cost then). Both give the same sums.
# Nothing allocates per frame; every sum stays below 2**30.
import array

import micropython
from micropython import const

from earshot.features import Features

C1 = const(16)
T = const(48)
H2 = const(32)
EVAL_EVERY = const(2)
N_AVG = const(1)  # the decision looks at this many scores (the model file must agree)
REFRACTORY = const(50)

_BANDS = const(32)  # features.BANDS
_RING = const(768)  # C1 * T
_BIAS = const(0x20000000)  # biases are stored + _BIAS: non-negative words read the same on every port
_DENSE = const(620)  # non-zero h1 values in the ring above which row order is cheaper (measured)
# state words (an int32 array)
_TOTAL = const(0)  # sum of every h1 value in the ring
_NZ = const(1)  # how many of them are non-zero
_SLOT = const(2)  # ring slot of this frame's h1 (T - 2 or T - 1)
_S1 = const(3)
_S2 = const(4)
_S3 = const(5)
_B3 = const(7)  # b3, b1[16], b2[32]: the model's biases (+ _BIAS), as wakemodel stores them
_B1 = const(8)
_B2 = const(24)
_ACC = const(56)  # layer-2 sums
_NSTATE = const(88)

# round(255 / (1 + exp(-(u - 128) / 16))), u = 0..255 (from reference.firmware_literals())
_SIG = bytes.fromhex(
    "000000000000000000000000000000000000000000000000000000000001010101010101010101010101010101010202"
    "020202020202020303030303040404040505050606060707070808090a0a0b0b0c0d0e0e0f10111213141617181a1b1d"
    "1e20222426282a2c2f313336393c3e4145484b4e5255595d6064686c7074787c8083878b8f93979b9fa2a6aaadb1b4b7"
    "babec1c3c6c9ccced0d3d5d7d9dbdddfe1e2e4e5e7e8e9ebecedeeeff0f1f1f2f3f4f4f5f5f6f7f7f8f8f8f9f9f9fafa"
    "fafbfbfbfbfcfcfcfcfcfdfdfdfdfdfdfdfdfdfefefefefefefefefefefefefefefefefeffffffffffffffffffffffff"
    "ffffffffffffffffffffffffffffffff")


class NoDetector:
    name = "none"
    score = 0

    def process(self, buf, at):
        return False

    def reset(self):
        pass


@micropython.viper
def _layer1(p: ptr8, q: ptr8, acc: int, ring: ptr8, st: ptr32):
    # h1 of this frame's features q (W1 p) into ring slot st[_SLOT]; keeps the ring's sum
    # and non-zero count. (p, q, acc are the first locals: on x64 and Xtensa, registers.)
    sx = 0
    i = 0
    while i < _BANDS:
        sx += q[i]
        i += 1
    s1 = int(st[_S1])
    h = ptr8(uint(ring) + C1 * int(st[_SLOT]))
    hs = 0
    nz = 0
    c = 0
    while c < C1:
        acc = int(st[_B1 + c]) - _BIAS - 128 * sx
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
        acc = p[16] * q[16] + acc
        acc = p[17] * q[17] + acc
        acc = p[18] * q[18] + acc
        acc = p[19] * q[19] + acc
        acc = p[20] * q[20] + acc
        acc = p[21] * q[21] + acc
        acc = p[22] * q[22] + acc
        acc = p[23] * q[23] + acc
        acc = p[24] * q[24] + acc
        acc = p[25] * q[25] + acc
        acc = p[26] * q[26] + acc
        acc = p[27] * q[27] + acc
        acc = p[28] * q[28] + acc
        acc = p[29] * q[29] + acc
        acc = p[30] * q[30] + acc
        acc = p[31] * q[31] + acc
        p = ptr8(uint(p) + _BANDS)
        v = acc >> s1
        if v <= 0:
            v = 0
        else:
            nz += 1
            if v > 255:
                v = 255
        h[c] = v
        hs += v
        c += 1
    st[_TOTAL] = int(st[_TOTAL]) + hs
    st[_NZ] = int(st[_NZ]) + nz


@micropython.viper
def _rows(p: ptr8, q: ptr8, acc: int, st: ptr32):
    # Layer-2 sums in row order: st[_ACC + r] = sum_j W2T[j][r] ring[j]. p = W2T, q = ring.
    w = uint(p)
    ring = uint(q)
    end = ring + _RING
    r = 0
    while r < H2:
        p = ptr8(w + r)
        q = ptr8(ring)
        acc = 0
        while uint(q) < end:
            acc = p[0] * q[0] + acc
            acc = p[32] * q[1] + acc
            acc = p[64] * q[2] + acc
            acc = p[96] * q[3] + acc
            acc = p[128] * q[4] + acc
            acc = p[160] * q[5] + acc
            acc = p[192] * q[6] + acc
            acc = p[224] * q[7] + acc
            acc = p[256] * q[8] + acc
            acc = p[288] * q[9] + acc
            acc = p[320] * q[10] + acc
            acc = p[352] * q[11] + acc
            acc = p[384] * q[12] + acc
            acc = p[416] * q[13] + acc
            acc = p[448] * q[14] + acc
            acc = p[480] * q[15] + acc
            acc = p[512] * q[16] + acc
            acc = p[544] * q[17] + acc
            acc = p[576] * q[18] + acc
            acc = p[608] * q[19] + acc
            acc = p[640] * q[20] + acc
            acc = p[672] * q[21] + acc
            acc = p[704] * q[22] + acc
            acc = p[736] * q[23] + acc
            acc = p[768] * q[24] + acc
            acc = p[800] * q[25] + acc
            acc = p[832] * q[26] + acc
            acc = p[864] * q[27] + acc
            acc = p[896] * q[28] + acc
            acc = p[928] * q[29] + acc
            acc = p[960] * q[30] + acc
            acc = p[992] * q[31] + acc
            acc = p[1024] * q[32] + acc
            acc = p[1056] * q[33] + acc
            acc = p[1088] * q[34] + acc
            acc = p[1120] * q[35] + acc
            acc = p[1152] * q[36] + acc
            acc = p[1184] * q[37] + acc
            acc = p[1216] * q[38] + acc
            acc = p[1248] * q[39] + acc
            acc = p[1280] * q[40] + acc
            acc = p[1312] * q[41] + acc
            acc = p[1344] * q[42] + acc
            acc = p[1376] * q[43] + acc
            acc = p[1408] * q[44] + acc
            acc = p[1440] * q[45] + acc
            acc = p[1472] * q[46] + acc
            acc = p[1504] * q[47] + acc
            acc = p[1536] * q[48] + acc
            acc = p[1568] * q[49] + acc
            acc = p[1600] * q[50] + acc
            acc = p[1632] * q[51] + acc
            acc = p[1664] * q[52] + acc
            acc = p[1696] * q[53] + acc
            acc = p[1728] * q[54] + acc
            acc = p[1760] * q[55] + acc
            acc = p[1792] * q[56] + acc
            acc = p[1824] * q[57] + acc
            acc = p[1856] * q[58] + acc
            acc = p[1888] * q[59] + acc
            acc = p[1920] * q[60] + acc
            acc = p[1952] * q[61] + acc
            acc = p[1984] * q[62] + acc
            acc = p[2016] * q[63] + acc
            acc = p[2048] * q[64] + acc
            acc = p[2080] * q[65] + acc
            acc = p[2112] * q[66] + acc
            acc = p[2144] * q[67] + acc
            acc = p[2176] * q[68] + acc
            acc = p[2208] * q[69] + acc
            acc = p[2240] * q[70] + acc
            acc = p[2272] * q[71] + acc
            acc = p[2304] * q[72] + acc
            acc = p[2336] * q[73] + acc
            acc = p[2368] * q[74] + acc
            acc = p[2400] * q[75] + acc
            acc = p[2432] * q[76] + acc
            acc = p[2464] * q[77] + acc
            acc = p[2496] * q[78] + acc
            acc = p[2528] * q[79] + acc
            acc = p[2560] * q[80] + acc
            acc = p[2592] * q[81] + acc
            acc = p[2624] * q[82] + acc
            acc = p[2656] * q[83] + acc
            acc = p[2688] * q[84] + acc
            acc = p[2720] * q[85] + acc
            acc = p[2752] * q[86] + acc
            acc = p[2784] * q[87] + acc
            acc = p[2816] * q[88] + acc
            acc = p[2848] * q[89] + acc
            acc = p[2880] * q[90] + acc
            acc = p[2912] * q[91] + acc
            acc = p[2944] * q[92] + acc
            acc = p[2976] * q[93] + acc
            acc = p[3008] * q[94] + acc
            acc = p[3040] * q[95] + acc
            p = ptr8(uint(p) + 96 * H2)
            q = ptr8(uint(q) + 96)
        st[_ACC + r] = acc
        r += 1


@micropython.viper
def _columns(p: ptr8, x: int, a0: int, q: ptr8, st: ptr32):
    # Layer-2 sums in column order, skipping zero inputs: st[_ACC + r] = sum_j W2T[j][r] q[j].
    a1 = 0
    a2 = 0
    a3 = 0
    a4 = 0
    a5 = 0
    a6 = 0
    a7 = 0
    a8 = 0
    a9 = 0
    a10 = 0
    a11 = 0
    a12 = 0
    a13 = 0
    a14 = 0
    a15 = 0
    a16 = 0
    a17 = 0
    a18 = 0
    a19 = 0
    a20 = 0
    a21 = 0
    a22 = 0
    a23 = 0
    a24 = 0
    a25 = 0
    a26 = 0
    a27 = 0
    a28 = 0
    a29 = 0
    a30 = 0
    a31 = 0
    end = uint(q) + _RING
    while uint(q) < end:
        x = q[0]
        if x:
            a0 = x * p[0] + a0
            a1 = x * p[1] + a1
            a2 = x * p[2] + a2
            a3 = x * p[3] + a3
            a4 = x * p[4] + a4
            a5 = x * p[5] + a5
            a6 = x * p[6] + a6
            a7 = x * p[7] + a7
            a8 = x * p[8] + a8
            a9 = x * p[9] + a9
            a10 = x * p[10] + a10
            a11 = x * p[11] + a11
            a12 = x * p[12] + a12
            a13 = x * p[13] + a13
            a14 = x * p[14] + a14
            a15 = x * p[15] + a15
            a16 = x * p[16] + a16
            a17 = x * p[17] + a17
            a18 = x * p[18] + a18
            a19 = x * p[19] + a19
            a20 = x * p[20] + a20
            a21 = x * p[21] + a21
            a22 = x * p[22] + a22
            a23 = x * p[23] + a23
            a24 = x * p[24] + a24
            a25 = x * p[25] + a25
            a26 = x * p[26] + a26
            a27 = x * p[27] + a27
            a28 = x * p[28] + a28
            a29 = x * p[29] + a29
            a30 = x * p[30] + a30
            a31 = x * p[31] + a31
        p = ptr8(uint(p) + H2)
        q = ptr8(uint(q) + 1)
    o = ptr32(uint(st) + 4 * _ACC)
    o[0] = a0
    o[1] = a1
    o[2] = a2
    o[3] = a3
    o[4] = a4
    o[5] = a5
    o[6] = a6
    o[7] = a7
    o[8] = a8
    o[9] = a9
    o[10] = a10
    o[11] = a11
    o[12] = a12
    o[13] = a13
    o[14] = a14
    o[15] = a15
    o[16] = a16
    o[17] = a17
    o[18] = a18
    o[19] = a19
    o[20] = a20
    o[21] = a21
    o[22] = a22
    o[23] = a23
    o[24] = a24
    o[25] = a25
    o[26] = a26
    o[27] = a27
    o[28] = a28
    o[29] = a29
    o[30] = a30
    o[31] = a31


@micropython.viper
def _layer23(ring: ptr8, w3: ptr8, sig: ptr8, st: ptr32) -> int:
    # From the layer-2 sums: h2 and the score. Then moves the ring on by EVAL_EVERY slots
    # (the next frames fill the last two) and returns the score.
    corr = 128 * int(st[_TOTAL])
    s2 = int(st[_S2])
    acc = int(st[_B3]) - _BIAS
    r = 0
    while r < H2:
        v = (int(st[_ACC + r]) + int(st[_B2 + r]) - _BIAS - corr) >> s2
        if v < 0:
            v = 0
        elif v > 255:
            v = 255
        acc += (int(w3[r]) - 128) * v
        r += 1
    u = (acc >> int(st[_S3])) + 128
    if u < 0:
        u = 0
    elif u > 255:
        u = 255
    # drop the two oldest h1 vectors
    hs = 0
    nz = 0
    r = 0
    while r < C1 * EVAL_EVERY:
        v = int(ring[r])
        hs += v
        if v:
            nz += 1
        r += 1
    st[_TOTAL] = int(st[_TOTAL]) - hs
    st[_NZ] = int(st[_NZ]) - nz
    w = ptr32(ring)
    r = 0
    while r < (_RING - C1 * EVAL_EVERY) // 4:
        w[0] = w[8]
        w[1] = w[9]
        w[2] = w[10]
        w[3] = w[11]
        w = ptr32(uint(w) + 16)
        r += 4
    return int(sig[u])


class WakeDetector:
    name = "wake"

    def __init__(self, model, cutoff):
        # model: wakemodel.Model; cutoff: 0..255 or a sensitivity name ("default" ...)
        if isinstance(cutoff, str):
            cutoff = model.cutoff(cutoff)
        if not isinstance(cutoff, int) or not 0 <= cutoff <= 255:
            raise ValueError("cutoff must be 0..255 or a sensitivity name")
        self.model = model
        self.cutoff = cutoff
        self._features = Features()
        self._ring = bytearray(_RING)
        self._st = array.array("i", bytes(4 * _NSTATE))
        st = self._st
        st[_S1], st[_S2], st[_S3] = model.s1, model.s2, model.s3
        for i in range(1 + C1 + H2):
            st[_B3 + i] = model.bias[i]
        self.reset()

    def reset(self):
        # As if the mic had heard digital silence before the next frame.
        self._features.reset()
        st, ring = self._st, self._ring
        zero = bytearray(_BANDS)
        st[_TOTAL] = st[_NZ] = 0
        for slot in range(T):
            st[_SLOT] = slot
            _layer1(self.model.w1, zero, 0, ring, st)
        self._evaluate()  # moves the ring on by two slots
        self.score = 0
        self._phase = 0
        self._hold = 0

    @micropython.native
    def _evaluate(self):
        st = self._st
        if st[_NZ] > _DENSE:
            _rows(self.model.w2, self._ring, 0, st)
        else:
            _columns(self.model.w2, 0, 0, self._ring, st)
        return _layer23(self._ring, self.model.w3, _SIG, st)

    @micropython.native  # bytecode would heap-allocate this frame's state on every call
    def process(self, buf, at):
        st = self._st
        st[_SLOT] = T - EVAL_EVERY + self._phase
        _layer1(self.model.w1, self._features.feed(buf, at), 0, self._ring, st)
        self._phase += 1
        if self._phase < EVAL_EVERY:
            if self._hold:
                self._hold -= 1
            return False
        self._phase = 0
        score = self._evaluate()
        self.score = score
        if self._hold:
            self._hold -= 1
            return False
        if score >= self.cutoff:
            self._hold = REFRACTORY
            return True
        return False
