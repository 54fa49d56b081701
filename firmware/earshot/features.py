# Streaming wake-word features: one vector of 32 log-mel bands (uint8) per 20 ms frame,
# integer maths only, viper, nothing allocated per frame. host_tools/wake/reference.py
# is the same computation in NumPy, bit for bit, and documents the maths; in short:
#   window   the last 512 samples x Hann (Q15), >> r: a block exponent from the peak
#            keeps every FFT input within +/-2**14 whatever the level
#   FFT      512-point real FFT = 256-point complex radix-4 FFT (twiddles Q15, every
#            butterfly output >> 2) + split step; power per bin (< 2**30)
#   mel      32 triangular bands 125..7500 Hz, one Q7 weight per bin (weight q/128 of the
#            bin's power goes to the band above its mel position, the rest below)
#   log      16 log2(band) from a 64-entry table, + 32 r - LOG_OFFSET, >> 1, clamped 0..255
# Every intermediate stays within +/-2**30 (32-bit machine words on the ESP32).
#
# Speed (the listening loop's budget is counted in x86 instructions of the unix port):
# viper keeps the first three locals of a function in registers and everything else in
# stack slots, each use of which costs about three instructions. So each kernel takes its
# hottest pointer and two scratch values as its first three arguments, tables sit at
# fixed offsets from the data they go with (one pointer reaches both), and the radix-4
# stages are written out per stride so that every index is a constant.
#
# Stored 16-bit values are signed numbers + 32768: viper loads zero-extend (and 32-bit
# loads sign-extend on the ESP32 but not on the 64-bit unix port); biased values read the
# same everywhere.
import micropython
from micropython import const

FEATURE_VERSION = const(1)
RATE = const(16000)
HOP = const(320)
WINDOW = const(512)
BANDS = const(32)
FMIN = const(125)
FMAX = const(7500)
LOG_FRAC_BITS = const(4)
LOG_OFFSET = const(420)
MEL_Q_BITS = const(7)

# What a model file must have been made with (wakemodel.py refuses anything else).
FEATURE = {"FEATURE_VERSION": FEATURE_VERSION, "RATE": RATE, "HOP": HOP, "WINDOW": WINDOW,
           "BANDS": BANDS, "FMIN": FMIN, "FMAX": FMAX, "LOG_FRAC_BITS": LOG_FRAC_BITS,
           "LOG_OFFSET": LOG_OFFSET, "MEL_Q_BITS": MEL_Q_BITS}

_B = const(32768)  # bias of stored 16-bit values
_B4 = const(131072)  # 4 _B: (sum + _B4) >> 2 is the biased output of a butterfly
_BIN_LO = const(5)  # bins 5..239 (156..7469 Hz) carry mel weight
_NBINS = const(235)

# One workspace buffer holds everything, at fixed byte offsets (so every kernel takes
# one pointer):
_WIN = const(0)  # u16: the window's 512 biased samples, oldest first ...
_HANN = const(512)  # ... then Hann (Q15) of samples 0..256 (the window is symmetric)
_Z = const(1540)  # 256 complex points (re, im u16), then tables at u16 offsets from z[k]:
_W1 = const(512)  # (cos, -sin) of W256^k, k = 0..63, biased  (k: the point's index)
_W2 = const(768)  # W256^2k
_W3 = const(1024)  # W256^3k
_SPLIT = const(1280)  # (cos, sin) of 2 pi k / 512, k = 0..128, unbiased
_T8 = const(4616)  # rev3 for the first stage (64), then the first bin of every mel interval (34)
_OUT = const(4714)  # the 32 features
_ST = const(4748)  # int32: [0] peak bits of the samples kept for the next window, [1] r
_WS = const(4756)

# Tables from host_tools.wake.reference.firmware_literals() (a test checks they agree).
# round(32768 cos(2 pi m / 512)), m = 0..128, u16 little-endian
_QCOS = bytes.fromhex(
    "0080fe7ff67fea7fd97fc27fa77f877f627f387f0a7fd67e9d7e607e1e7ed67d8a7d3a7de47c897c2a7cc67b5d7bef7a"
    "7d7a067a8a790a798578fb776c77d9764276a67505756074b673087355729e71e37023705f6f976eca6df96c246c4b6b"
    "6e6a8c69a768bd67d066de65e964ef63f262f161ec60e45fd75ec85db45c9d5b825a645943581e57f655ca549b536952"
    "3451fb4fc04e814d404cfb4ab4496a481d47cd457b442643ce417440173fb83d573cf33a8d392538ba364e35df336e32"
    "fc30872f112e992c1f2ba4292728a8262825a72324229f201a1f931d0c1c831af9186e17e2155514c8123a11ab0f1c0e"
    "8c0cfb0a6b09d9074806b604240392010000")
# per bin 5..239: its mel interval j (edge j <= mel(f) < edge j + 1) ...
_MEL_J = bytes.fromhex(
    "00010102020203030404050505060606070707080808090909090a0a0a0a0b0b0b0b0c0c0c0c0d0d0d0d0d0e0e0e0e0e"
    "0f0f0f0f0f10101010101011111111111112121212121212131313131313131414141414141414151515151515151516"
    "16161616161616161717171717171717171818181818181818181819191919191919191919191a1a1a1a1a1a1a1a1a1a"
    "1a1a1b1b1b1b1b1b1b1b1b1b1b1b1c1c1c1c1c1c1c1c1c1c1c1c1c1c1d1d1d1d1d1d1d1d1d1d1d1d1d1d1e1e1e1e1e1e"
    "1e1e1e1e1e1e1e1e1e1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f2020202020202020202020202020202020")
# ... and its Q7 weight for band j
_MEL_Q = bytes.fromhex(
    "440646033f7931671c4f0131600f3c67123c650d345b0025496d1032537415345472102e4b6805203c57720c26405972"
    "0a223a526900172e445a6f051a2f44586c0014283b4e617407192b3d4f61720415263748586979091929394858677605"
    "142332414f5d6c7a081624313f4d5a6775020f1c2935424f5b6874000c1925313c4854606b77020d19242f3a45505b66"
    "717b06111b26303a454f59636d77010b151f28323c454f58626b747e071019222c353e464f58616a727b040c151d262e"
    "373f485058606871790109111921293038404850575f676e767d050c141b232a313940474e555d646b7279")
# round(16 log2(1 + (f + 0.5) / 64)), f = 0..63
LOG_TAB = bytes.fromhex(
    "0001010102020203030304040404050505060606060707070708080809090909090a0a0a0a0b0b0b0b0c0c0c0c0c0d0d"
    "0d0d0d0e0e0e0e0e0f0f0f0f0f101010")


def _cos512(m):
    # Q15 cos(2 pi m / 512) from the quarter wave, any integer m
    m %= 512
    if m <= 128:
        return _qcos(m)
    if m <= 256:
        return -_qcos(256 - m)
    if m <= 384:
        return -_qcos(m - 256)
    return _qcos(512 - m)


def _qcos(m):
    return _QCOS[2 * m] | (_QCOS[2 * m + 1] << 8)


def _workspace():
    # The workspace with its tables filled in and a silent window.
    ws = bytearray(_WS)
    for n in range(WINDOW // 2 + 1):
        _put16(ws, _WIN // 2 + _HANN + n, (32768 - _cos512(n)) >> 1)
    z = _Z // 2
    for k in range(1, 64):
        for j, base in ((1, _W1), (2, _W2), (3, _W3)):
            m = 2 * j * k
            _put16(ws, z + base + 2 * k, _cos512(m) + _B)
            _put16(ws, z + base + 2 * k + 1, -_cos512(m - 128) + _B)
    for k in range(_BIN_LO, 129):
        _put16(ws, z + _SPLIT + 2 * k, _cos512(k))
        _put16(ws, z + _SPLIT + 2 * k + 1, _cos512(k - 128))
    for r in range(64):
        ws[_T8 + r] = ((r & 3) << 4) | (r & 12) | (r >> 4)
    j = 0
    for b in range(_NBINS):
        while j <= _MEL_J[b]:
            ws[_T8 + 64 + j] = b
            j += 1
    while j < 34:
        ws[_T8 + 64 + j] = _NBINS
        j += 1
    return ws


def _put16(buf, i, v):
    buf[2 * i] = v & 255
    buf[2 * i + 1] = v >> 8


@micropython.viper
def _ingest(h: ptr32, s: ptr32, o: int, at: int) -> int:
    # Moves the window on by one frame: words 160..255 of the history h (the last 192
    # samples) to 0..95, the frame (320 samples at byte `at` of s) to 96..255, biased.
    # Returns the block exponent r = bitlen of the OR over the window's sample pairs w of
    # w ^ (w << 1) (its top bit is one above the top bit of the largest |s|, for s < 0
    # counted as -s - 1), folded to 16 bits; 0 only when the window is all zeros.
    # The workspace's state word 0 keeps the bits of the samples that stay in the window.
    st = ptr32(uint(h) + _ST)
    end = uint(h) + 384
    while uint(h) < end:
        h[0] = h[160]
        h[1] = h[161]
        h[2] = h[162]
        h[3] = h[163]
        h[4] = h[164]
        h[5] = h[165]
        h[6] = h[166]
        h[7] = h[167]
        h = ptr32(uint(h) + 32)
    s = ptr32(uint(s) + at)
    flip = 0x8000
    flip |= flip << 16  # biases both samples of a word (at run time: 0x80008000 is no
    # small int on a 32-bit port, where the compiler would make it an object)
    end = uint(s) + 256  # samples 0..127 of the frame: in this window only
    while uint(s) < end:
        h[0] = s[0] ^ flip
        o = (s[0] ^ (s[0] << 1)) | o
        h[1] = s[1] ^ flip
        o = (s[1] ^ (s[1] << 1)) | o
        h[2] = s[2] ^ flip
        o = (s[2] ^ (s[2] << 1)) | o
        h[3] = s[3] ^ flip
        o = (s[3] ^ (s[3] << 1)) | o
        h = ptr32(uint(h) + 16)
        s = ptr32(uint(s) + 16)
    old = o
    o = 0
    end = uint(s) + 384  # samples 128..319: also in the next window
    while uint(s) < end:
        h[0] = s[0] ^ flip
        o = (s[0] ^ (s[0] << 1)) | o
        h[1] = s[1] ^ flip
        o = (s[1] ^ (s[1] << 1)) | o
        h[2] = s[2] ^ flip
        o = (s[2] ^ (s[2] << 1)) | o
        h[3] = s[3] ^ flip
        o = (s[3] ^ (s[3] << 1)) | o
        h = ptr32(uint(h) + 16)
        s = ptr32(uint(s) + 16)
    old = old | o | int(st[0])
    st[0] = o
    o = (old | (old >> 16)) & 0xFFFF
    r = 0
    while o:
        o >>= 1
        r += 1
    st[1] = r
    return r


@micropython.viper
def _stage1(s: ptr16, u: int, v: int):
    # Window, >> r, pack z[n] = x[2n] + i x[2n+1] and run the first radix-4 stage (unit
    # twiddles) on z[r], z[r + 64], z[r + 128], z[r + 192]; the results go to the DIT
    # positions 4 rev3(r) .. 4 rev3(r) + 3. Sample n of the window is s[n]; its Hann
    # coefficient is s[_HANN + n] for n <= 256 and, by symmetry, h[256 - n] with h walking
    # down from the middle of the table.
    zb = uint(s) + _Z
    t = uint(s) + _T8
    sh = int(ptr32(uint(s) + _ST)[1])
    h = ptr16(uint(s) + 2 * (_HANN + 256))
    end = uint(s) + 256
    while uint(s) < end:
        a0r = ((int(s[0]) - _B) * int(s[_HANN])) >> sh
        a0i = ((int(s[1]) - _B) * int(s[_HANN + 1])) >> sh
        a1r = ((int(s[128]) - _B) * int(s[_HANN + 128])) >> sh
        a1i = ((int(s[129]) - _B) * int(s[_HANN + 129])) >> sh
        a2r = ((int(s[256]) - _B) * int(h[0])) >> sh
        a2i = ((int(s[257]) - _B) * int(h[-1])) >> sh
        a3r = ((int(s[384]) - _B) * int(h[-128])) >> sh
        a3i = ((int(s[385]) - _B) * int(h[-129])) >> sh
        p = ptr16(zb + 16 * int(ptr8(t)[0]))
        u = a0r + a2r + _B4
        v = a1r + a3r
        p[0] = (u + v) >> 2
        p[4] = (u - v) >> 2
        u = a0i + a2i + _B4
        v = a1i + a3i
        p[1] = (u + v) >> 2
        p[5] = (u - v) >> 2
        u = a0r - a2r + _B4
        v = a1i - a3i
        p[2] = (u + v) >> 2
        p[6] = (u - v) >> 2
        u = a0i - a2i + _B4
        v = a1r - a3r
        p[3] = (u - v) >> 2
        p[7] = (u + v) >> 2
        s = ptr16(uint(s) + 4)
        h = ptr16(uint(h) - 4)
        t += 1


@micropython.viper
def _stage4(p: ptr16, u: int, v: int):
    # Radix-4 DIT stage, quarter size 4: butterflies on z[i], z[i+4], z[i+8], z[i+12] for
    # i = g + k, g a multiple of 16. The twiddles of k are entry 16 k of the W tables.
    z = uint(p) + _Z
    p = ptr16(z)
    end = z + 1024
    while uint(p) < end:  # k = 0: unit twiddles
        a0r = int(p[0]) + (_B4 - _B)
        a0i = int(p[1]) + (_B4 - _B)
        b2r = int(p[16]) - _B
        b2i = int(p[17]) - _B
        b1r = int(p[8]) - _B
        b1i = int(p[9]) - _B
        b3r = int(p[24]) - _B
        b3i = int(p[25]) - _B
        u = a0r + b2r
        v = b1r + b3r
        p[0] = (u + v) >> 2
        p[16] = (u - v) >> 2
        u = a0i + b2i
        v = b1i + b3i
        p[1] = (u + v) >> 2
        p[17] = (u - v) >> 2
        u = a0r - b2r
        v = b1i - b3i
        p[8] = (u + v) >> 2
        p[24] = (u - v) >> 2
        u = a0i - b2i
        v = b1r - b3r
        p[9] = (u - v) >> 2
        p[25] = (u + v) >> 2
        p = ptr16(uint(p) + 64)
    tw = ptr16(z + 2 * _W1 + 64)
    k = 1
    while k < 4:
        w1r = int(tw[0]) - _B
        w1i = int(tw[1]) - _B
        w2r = int(tw[_W2 - _W1]) - _B
        w2i = int(tw[_W2 - _W1 + 1]) - _B
        w3r = int(tw[_W3 - _W1]) - _B
        w3i = int(tw[_W3 - _W1 + 1]) - _B
        tw = ptr16(uint(tw) + 64)
        p = ptr16(z + 4 * k)
        while uint(p) < end:
            u = int(p[8]) - _B
            v = int(p[9]) - _B
            b1r = (u * w1r - v * w1i) >> 15
            b1i = (u * w1i + v * w1r) >> 15
            u = int(p[16]) - _B
            v = int(p[17]) - _B
            b2r = (u * w2r - v * w2i) >> 15
            b2i = (u * w2i + v * w2r) >> 15
            u = int(p[24]) - _B
            v = int(p[25]) - _B
            b3r = (u * w3r - v * w3i) >> 15
            b3i = (u * w3i + v * w3r) >> 15
            a0r = int(p[0]) + (_B4 - _B)
            a0i = int(p[1]) + (_B4 - _B)
            u = a0r + b2r
            v = b1r + b3r
            p[0] = (u + v) >> 2
            p[16] = (u - v) >> 2
            u = a0i + b2i
            v = b1i + b3i
            p[1] = (u + v) >> 2
            p[17] = (u - v) >> 2
            u = a0r - b2r
            v = b1i - b3i
            p[8] = (u + v) >> 2
            p[24] = (u - v) >> 2
            u = a0i - b2i
            v = b1r - b3r
            p[9] = (u - v) >> 2
            p[25] = (u + v) >> 2
            p = ptr16(uint(p) + 64)
        k += 1


@micropython.viper
def _stage16(p: ptr16, u: int, v: int):
    # Radix-4 DIT stage, quarter size 16: butterflies on z[i], z[i+16], z[i+32], z[i+48] for
    # i = g + k, g a multiple of 64. The twiddles of k are entry 4 k of the W tables.
    z = uint(p) + _Z
    p = ptr16(z)
    end = z + 1024
    while uint(p) < end:  # k = 0: unit twiddles
        a0r = int(p[0]) + (_B4 - _B)
        a0i = int(p[1]) + (_B4 - _B)
        b2r = int(p[64]) - _B
        b2i = int(p[65]) - _B
        b1r = int(p[32]) - _B
        b1i = int(p[33]) - _B
        b3r = int(p[96]) - _B
        b3i = int(p[97]) - _B
        u = a0r + b2r
        v = b1r + b3r
        p[0] = (u + v) >> 2
        p[64] = (u - v) >> 2
        u = a0i + b2i
        v = b1i + b3i
        p[1] = (u + v) >> 2
        p[65] = (u - v) >> 2
        u = a0r - b2r
        v = b1i - b3i
        p[32] = (u + v) >> 2
        p[96] = (u - v) >> 2
        u = a0i - b2i
        v = b1r - b3r
        p[33] = (u - v) >> 2
        p[97] = (u + v) >> 2
        p = ptr16(uint(p) + 256)
    tw = ptr16(z + 2 * _W1 + 16)
    k = 1
    while k < 16:
        w1r = int(tw[0]) - _B
        w1i = int(tw[1]) - _B
        w2r = int(tw[_W2 - _W1]) - _B
        w2i = int(tw[_W2 - _W1 + 1]) - _B
        w3r = int(tw[_W3 - _W1]) - _B
        w3i = int(tw[_W3 - _W1 + 1]) - _B
        tw = ptr16(uint(tw) + 16)
        p = ptr16(z + 4 * k)
        while uint(p) < end:
            u = int(p[32]) - _B
            v = int(p[33]) - _B
            b1r = (u * w1r - v * w1i) >> 15
            b1i = (u * w1i + v * w1r) >> 15
            u = int(p[64]) - _B
            v = int(p[65]) - _B
            b2r = (u * w2r - v * w2i) >> 15
            b2i = (u * w2i + v * w2r) >> 15
            u = int(p[96]) - _B
            v = int(p[97]) - _B
            b3r = (u * w3r - v * w3i) >> 15
            b3i = (u * w3i + v * w3r) >> 15
            a0r = int(p[0]) + (_B4 - _B)
            a0i = int(p[1]) + (_B4 - _B)
            u = a0r + b2r
            v = b1r + b3r
            p[0] = (u + v) >> 2
            p[64] = (u - v) >> 2
            u = a0i + b2i
            v = b1i + b3i
            p[1] = (u + v) >> 2
            p[65] = (u - v) >> 2
            u = a0r - b2r
            v = b1i - b3i
            p[32] = (u + v) >> 2
            p[96] = (u - v) >> 2
            u = a0i - b2i
            v = b1r - b3r
            p[33] = (u - v) >> 2
            p[97] = (u + v) >> 2
            p = ptr16(uint(p) + 256)
        k += 1


@micropython.viper
def _stage64(p: ptr16, u: int, v: int):
    # Radix-4 DIT stage, quarter size 64 (one group): butterflies on z[k], z[k+64], z[k+128],
    # z[k+192]; the twiddles of k sit at constant offsets from z[k] (the W tables).
    p = ptr16(uint(p) + _Z)
    a0r = int(p[0]) + (_B4 - _B)
    a0i = int(p[1]) + (_B4 - _B)
    b2r = int(p[256]) - _B
    b2i = int(p[257]) - _B
    b1r = int(p[128]) - _B
    b1i = int(p[129]) - _B
    b3r = int(p[384]) - _B
    b3i = int(p[385]) - _B
    u = a0r + b2r
    v = b1r + b3r
    p[0] = (u + v) >> 2
    p[256] = (u - v) >> 2
    u = a0i + b2i
    v = b1i + b3i
    p[1] = (u + v) >> 2
    p[257] = (u - v) >> 2
    u = a0r - b2r
    v = b1i - b3i
    p[128] = (u + v) >> 2
    p[384] = (u - v) >> 2
    u = a0i - b2i
    v = b1r - b3r
    p[129] = (u - v) >> 2
    p[385] = (u + v) >> 2
    p = ptr16(uint(p) + 4)
    end = uint(p) + 252
    while uint(p) < end:
        u = int(p[128]) - _B
        v = int(p[129]) - _B
        b1r = (u * (int(p[_W1]) - _B) - v * (int(p[_W1 + 1]) - _B)) >> 15
        b1i = (u * (int(p[_W1 + 1]) - _B) + v * (int(p[_W1]) - _B)) >> 15
        u = int(p[256]) - _B
        v = int(p[257]) - _B
        b2r = (u * (int(p[_W2]) - _B) - v * (int(p[_W2 + 1]) - _B)) >> 15
        b2i = (u * (int(p[_W2 + 1]) - _B) + v * (int(p[_W2]) - _B)) >> 15
        u = int(p[384]) - _B
        v = int(p[385]) - _B
        b3r = (u * (int(p[_W3]) - _B) - v * (int(p[_W3 + 1]) - _B)) >> 15
        b3i = (u * (int(p[_W3 + 1]) - _B) + v * (int(p[_W3]) - _B)) >> 15
        a0r = int(p[0]) + (_B4 - _B)
        a0i = int(p[1]) + (_B4 - _B)
        u = a0r + b2r
        v = b1r + b3r
        p[0] = (u + v) >> 2
        p[256] = (u - v) >> 2
        u = a0i + b2i
        v = b1i + b3i
        p[1] = (u + v) >> 2
        p[257] = (u - v) >> 2
        u = a0r - b2r
        v = b1i - b3i
        p[128] = (u + v) >> 2
        p[384] = (u - v) >> 2
        u = a0i - b2i
        v = b1r - b3r
        p[129] = (u - v) >> 2
        p[385] = (u + v) >> 2
        p = ptr16(uint(p) + 4)


@micropython.viper
def _power(zk: ptr16, u: int, v: int):
    # Split step for k = 5..128: Z[k] (zk) and Z[256 - k] (zm) -> the powers of bins k and
    # 256 - k, written over those two points as 32-bit words (bins 240..251, and the first
    # of the two writes for k = 128, are not used). X[k] = (s - i u) / 2 and
    # conj X[256 - k] = (s + i u) / 2, s = Z[k] + conj Z[256 - k], u = W512^k (Z[k] - conj Z[256 - k]).
    end = uint(zk) + _Z + 4 * 129
    zm = ptr16(uint(zk) + _Z + 4 * (256 - _BIN_LO))
    zk = ptr16(uint(zk) + _Z + 4 * _BIN_LO)
    while uint(zk) < end:
        u = int(zk[0])
        v = int(zm[0])
        sr = (u + v - 2 * _B) >> 1
        dr = (u - v) >> 1
        u = int(zk[1])
        v = int(zm[1])
        si = (u - v) >> 1
        di = (u + v - 2 * _B) >> 1
        u = int(zk[_SPLIT])
        v = int(zk[_SPLIT + 1])
        ur = (dr * u + di * v) >> 15
        ui = (di * u - dr * v) >> 15
        u = (sr + ui) >> 1
        v = (si - ur) >> 1
        ptr32(zk)[0] = u * u + v * v
        u = (sr - ui) >> 1
        v = (si + ur) >> 1
        ptr32(zm)[0] = u * u + v * v
        zk = ptr16(uint(zk) + 4)
        zm = ptr16(uint(zm) - 4)


@micropython.viper
def _mel_log(pp: ptr32, mq: ptr8, lo: int, lt: ptr8):
    # Mel bands from the bin powers (bins 5..239), then log, offset and clamp -> the 32
    # features. The bins of mel interval j give (P >> 7) q to band j, the rest to band j-1.
    # mq: the mel weights _MEL_Q, lt: LOG_TAB.
    ws = uint(pp)
    bounds = ptr8(ws + _T8 + 64)
    out = ptr8(ws + _OUT)
    r32 = 32 * int(ptr32(ws + _ST)[1]) - LOG_OFFSET
    pp = ptr32(ws + _Z + 4 * _BIN_LO)
    rising = 0
    j = 0
    while j <= 32:
        e = uint(mq) + int(bounds[j + 1]) - int(bounds[j])
        lo = 0
        total = 0
        while uint(mq) < e:
            p = pp[0]
            lo = (p >> 7) * int(mq[0]) + lo
            total += p
            pp = ptr32(uint(pp) + 4)
            mq = ptr8(uint(mq) + 1)
        if j:
            v = rising + total - lo  # band j - 1
            f = 0
            if v:
                m = 0
                t = v
                if t >= 0x10000:
                    t >>= 16
                    m = 16
                if t >= 0x100:
                    t >>= 8
                    m += 8
                if t >= 0x10:
                    t >>= 4
                    m += 4
                if t >= 4:
                    t >>= 2
                    m += 2
                if t >= 2:
                    m += 1
                if m >= 6:
                    t = v >> (m - 6)
                else:
                    t = v << (6 - m)
                f = (16 * m + int(lt[t - 64]) + r32) >> 1
                if f < 0:
                    f = 0
                elif f > 255:
                    f = 255
            out[j - 1] = f
        rising = lo
        j += 1


class Features:
    # feed(buf, at) -> the features of the 20 ms frame at byte offset `at` of buf (320 s16
    # samples, at a multiple of 4) as a 32-byte memoryview that the next call overwrites.
    def __init__(self):
        self._ws = _workspace()
        self.out = memoryview(self._ws)[_OUT:_OUT + BANDS]
        self.reset()

    def reset(self):
        # History before the next frame is silence.
        _silence(self._ws)

    @micropython.native  # bytecode would heap-allocate this frame's state on every call
    def feed(self, buf, at):
        ws = self._ws
        if _ingest(ws, buf, 0, at):
            _stage1(ws, 0, 0)
            _stage4(ws, 0, 0)
            _stage16(ws, 0, 0)
            _stage64(ws, 0, 0)
            _power(ws, 0, 0)
            _mel_log(ws, _MEL_Q, 0, LOG_TAB)
        else:
            _clear(ws)
        return self.out


@micropython.viper
def _silence(ws: ptr16):
    # a silent window and nothing carried over
    i = 0
    while i < WINDOW:
        ws[i] = _B
        i += 1
    ptr32(uint(ws) + _ST)[0] = 0


@micropython.viper
def _clear(ws: ptr8):
    # all-zero features
    out = ptr8(uint(ws) + _OUT)
    i = 0
    while i < BANDS:
        out[i] = 0
        i += 1
