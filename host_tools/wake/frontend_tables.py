# The tables of TFLite Micro's audio microfrontend, as pymicro-features 2.0.2 configures
# it (16 kHz, window 30 ms, step 10 ms, 40 channels 125..7500 Hz, PCAN gain_bits 21 on a
# 512-point FFT), computed exactly as the C *_util.cc code computes them, for
# firmware/earshot/frontend.py to embed as literals (the board's floats are single
# precision and its libm is not glibc's: computed there they would come out different).
#
# The C code mixes float and double. Here every float operation is a double operation
# rounded to float32 (exact for + - * / of floats), and cosf, log1pf and powf are glibc's
# own (ctypes), the functions pymicro-features calls when it builds the same tables;
# kissfft's twiddles are double (math.cos/sin: glibc's cos/sin). tests/test_frontend.py
# checks them against the tables inside a live pymicro_features frontend.
#
#   window_coefficients()  window_util.cc: 480 Hann coefficients, Q12
#   fft_twiddles()         kiss_fft.cc: the 256 twiddles of the complex FFT, Q15
#   super_twiddles()       kiss_fftr.cc: the 128 twiddles of the real FFT's split, Q15
#   filterbank()           filterbank_util.cc: the channels' bins, weights, unweights
#   pcan_lut()             pcan_gain_control_util.cc: the gain LUT, C's layout
#   firmware_literals()    all of them (and a few derived tables) as the firmware embeds them
import ctypes
import ctypes.util
import math
import struct

import numpy as np

RATE = 16000
WINDOW = 480
STEP = 160
FFT = 512
CHANNELS = 40
LOWER_HZ = 125.0
UPPER_HZ = 7500.0
FILTERBANK_BITS = 12
WINDOW_BITS = 12
PCAN_STRENGTH = 0.95
PCAN_OFFSET = 80.0
PCAN_GAIN_BITS = 21
PCAN_SNR_BITS = 12
SMOOTHING_BITS = 10
NOISE_REDUCTION_BITS = 14
WDF_BITS = 32  # kWideDynamicFunctionBits

# noise_reduction_util.cc: config * (1 << 14), float to uint16 (truncates)
EVEN_SMOOTHING = int(np.float32(0.025) * np.float32(1 << 14))
ODD_SMOOTHING = int(np.float32(0.06) * np.float32(1 << 14))
MIN_SIGNAL_REMAINING = int(np.float32(0.05) * np.float32(1 << 14))

LOG_LUT = (
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797,
    2944, 3087, 3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549,
    4633, 4714, 4791, 4864, 4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444,
    5477, 5507, 5533, 5557, 5578, 5595, 5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626,
    5615, 5602, 5586, 5568, 5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332, 5291, 5249, 5203,
    5156, 5106, 5054, 5000, 4944, 4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264,
    4184, 4103, 4020, 3935, 3848, 3759, 3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875,
    2768, 2659, 2549, 2437, 2323, 2207, 2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094,
    963, 830, 695, 559, 421, 282, 142, 0, 0)

_libm = None


def _m():
    global _libm
    if _libm is None:
        _libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        for name, nargs in (("cosf", 1), ("log1pf", 1), ("powf", 2)):
            fn = getattr(_libm, name)
            fn.restype = ctypes.c_float
            fn.argtypes = [ctypes.c_float] * nargs
    return _libm


def f32(x):
    """x rounded to the nearest float32 (as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def floorf_q(x, bits):
    # floorf(x * (1 << bits) + 0.5f) in float, as the C code quantises
    return math.floor(f32(f32(x * (1 << bits)) + 0.5))


def window_coefficients():
    """window_util.cc: floorf((0.5f - 0.5f cosf(arg (i + 0.5f))) 4096 + 0.5f)."""
    arg = f32(f32(f32(math.pi) * 2.0) / float(WINDOW))
    out = []
    for i in range(WINDOW):
        c = _m().cosf(f32(arg * f32(i + 0.5)))
        out.append(floorf_q(f32(0.5 - f32(0.5 * c)), WINDOW_BITS))
    return out


def _cexp(phase):
    # kissfft FIXED_POINT's kf_cexp: floor(.5 + 32767 cos/sin(phase)) in double
    return math.floor(0.5 + 32767 * math.cos(phase)), math.floor(0.5 + 32767 * math.sin(phase))


def fft_twiddles():
    """kiss_fft_alloc(256): twiddles[i] = e^(-2 pi i i / 256), i = 0..255."""
    return [_cexp(-2 * math.pi * i / 256) for i in range(256)]


def super_twiddles():
    """kiss_fftr_alloc(512): super_twiddles[i] = e^(-i pi ((i + 1) / 256 + 0.5)), i = 0..127."""
    return [_cexp(-3.14159265358979323846264338327 * ((i + 1) / 256 + 0.5)) for i in range(128)]


def _mel(freq):
    # FreqToMel: 1127.0f * log1pf(freq / 700.0f)
    return f32(1127.0 * _m().log1pf(f32(freq / 700.0)))


def filterbank():
    """filterbank_util.cc's FilterbankPopulateState for 40 channels on 257 bins.

    Returns (start_index, end_index, chans): chans[c] for c = 0..40 is (first, width,
    weights, unweights) of the bins that channel c's accumulator sees with their
    weights, and that channel c + 1's sees with their unweights (the padding bins of the
    C tables have weight 0 and are left out)."""
    n1 = CHANNELS + 1
    mel_low = _mel(LOWER_HZ)
    mel_span = f32(_mel(UPPER_HZ) - mel_low)
    spacing = f32(mel_span / float(n1))
    centers = [f32(mel_low + f32(spacing * float(i + 1))) for i in range(n1)]
    hz = f32(f32(0.5 * RATE) / f32(float(FFT // 2 + 1) - 1.0))
    start = int(f32(1.5 + f32(LOWER_HZ / hz)))
    chans = []
    first = start
    end = 0
    for c in range(n1):
        k = first
        while _mel(f32(float(k) * hz)) <= centers[c]:
            k += 1
        denom = mel_low if c == 0 else centers[c - 1]
        weights, unweights = [], []
        for f in range(first, k):
            w = f32(f32(centers[c] - _mel(f32(float(f) * hz))) / f32(centers[c] - denom))
            weights.append(floorf_q(w, FILTERBANK_BITS))
            unweights.append(floorf_q(f32(1.0 - w), FILTERBANK_BITS))
        chans.append((first, k - first, weights, unweights))
        end = max(end, k)
        first = k
    return start, end, chans


def _pcan_gain(input_bits, x):
    # PcanGainLookupFunction
    xf = f32(f32(float(x)) / f32(float(1 << input_bits)))
    g = f32(float(1 << PCAN_GAIN_BITS) * _m().powf(f32(xf + PCAN_OFFSET), -f32(PCAN_STRENGTH)))
    if g > 0x7FFF:
        return 0x7FFF
    return int(f32(g + 0.5))


def pcan_lut():
    """pcan_gain_control_util.cc's gain_lut (4 * 32 - 3 = 125 int16), index as the C does."""
    correction = FFT.bit_length() - 1 - FILTERBANK_BITS // 2  # MostSignificantBit32(512) = 10
    input_bits = SMOOTHING_BITS - correction
    lut = [0] * (4 * WDF_BITS - 3)
    lut[0] = _pcan_gain(input_bits, 0)
    lut[1] = _pcan_gain(input_bits, 1)
    for interval in range(2, WDF_BITS + 1):
        x0 = 1 << (interval - 1)
        x1 = x0 + (x0 >> 1)
        x2 = x0 + (x0 - 1) if interval == WDF_BITS else 2 * x0
        y0, y1, y2 = (_pcan_gain(input_bits, x) for x in (x0, x1, x2))
        a1 = 4 * (y1 - y0) - (y2 - y0)
        a2 = (y2 - y0) - a1
        base = 4 * interval - 6
        lut[base] = y0
        lut[base + 1] = (a1 + 32768) % 65536 - 32768
        lut[base + 2] = (a2 + 32768) % 65536 - 32768
    return lut


def pcan_rows():
    """pcan_lut() as the firmware keeps it: the values for x = 0, 1, then per interval n
    (4 n - 6 ..): y0, -a1 (every a1 <= 0), a2 + 32768, 0 (C leaves that one unset)."""
    lut = pcan_lut()
    rows = lut[:2]
    for n in range(2, WDF_BITS + 1):
        y0, a1, a2 = lut[4 * n - 6:4 * n - 3]
        assert y0 >= 0 and a1 <= 0 and -32768 <= a2 < 32768
        rows += [y0, -a1, a2 + 32768, 0]
    return rows[:4 * WDF_BITS - 3]


def snr_shift():
    correction = FFT.bit_length() - 1 - FILTERBANK_BITS // 2  # MostSignificantBit32(512) = 10
    return PCAN_GAIN_BITS - correction - PCAN_SNR_BITS


def sqrt_seed():
    """For i = 64..255: isqrt((i + 1) 2**22 - 1) + 1, an over-estimate of sqrt(x) for any
    x in [i 2**22, (i + 1) 2**22): one Newton step from it lands on isqrt(x) or one above."""
    return [math.isqrt(((i + 1) << 22) - 1) + 1 for i in range(64, 256)]


def _hex(values, fmt):
    return struct.pack("<%d%s" % (len(values), fmt), *values).hex()


def firmware_literals():
    """The tables as firmware/earshot/frontend.py embeds them (hex strings of
    little-endian u16 unless said): where each goes in its buffer is the firmware's."""
    b = 32768
    tw = fft_twiddles()
    t1, t2, t3 = [], [], []
    for k in range(64):
        c, s = tw[k]
        t1 += [c, -s]  # k < 64: cos >= 0, sin <= 0
        for rows, j in ((t2, 2), (t3, 3)):
            c, s = tw[j * k]
            rows += [c + b, s + b]
    sup = [0, 0]
    for c, s in super_twiddles():
        sup += [-c, -s]  # k = 1..128: cos <= 0, sin <= 0
    start, end, chans = filterbank()
    return {
        "WINDOW": _hex(window_coefficients(), "H"),
        "T1": _hex(t1, "H"),
        "T2": _hex(t2, "H"),
        "T3": _hex(t3, "H"),
        "SUPER": _hex(sup, "H"),
        "FB_WEIGHT": _hex([w for _, _, ws, _ in chans for w in ws], "H"),
        "FB_FIRST": _hex([first for first, _, _, _ in chans] + [end], "B"),
        "PCAN": _hex(pcan_rows(), "H"),
        "LOG": _hex(list(LOG_LUT), "H"),
        "SQRT": _hex(sqrt_seed(), "H"),
    }
