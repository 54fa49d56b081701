# The wake-word detector in NumPy, bit for bit what the board computes
# (firmware/earshot/features.py + detector.py). Trainer, eval and tests call this; the
# firmware is checked against it under MicroPython (tests/test_wake_dsp.py).
#
# FEATURES (one uint8 vector of BANDS = 32 per 20 ms frame; integers only; `>>` is floor
# division by a power of two, also for negative numbers)
#   frame i covers samples [320 i, 320 i + 320); its window is the 512 samples ending
#   there (samples before the start of the audio are 0).
#   1. peak   a = max over the window of (s ^ (s >> 15))   (|s|, for s < 0 counted as -s - 1)
#             r = bitlen(a) + 1; r = 0 for an all-zero window (its features are all 0).
#             (The board gets r as the bit length of the OR of s ^ (s << 1) over the window.)
#   2. window x[n] = (s[n] * HANN[n]) >> r,  HANN[n] = (32768 - COS[n]) >> 1,
#             COS[m] = round(32768 cos(2 pi m / 512)): |x| <= 2**14 whatever the level; the
#             block exponent r is added back in step 6.
#   3. FFT    z[n] = x[2n] + i x[2n+1], 256 points in base-4 digit-reversed order, then 4
#             radix-4 decimation-in-time stages (quarter q = 1, 4, 16, 64). Butterfly on
#             a0, a1, a2, a3 at i, i+q, i+2q, i+3q with twiddles W^k, W^2k, W^3k of the
#             stage (W = COS - i SIN, Q15): b_j = a_j W^jk with each component >> 15 (b_0 = a0),
#             t0 = b0 + b2, t1 = b0 - b2, t2 = b1 + b3, t3 = b1 - b3, and the outputs
#             (t0 + t2, t1 - i t3, t0 - t2, t1 + i t3), each component >> 2.
#   4. split  for k = 5..128: s = (Z[k] + conj Z[256-k]) >> 1, d = (Z[k] - conj Z[256-k]) >> 1,
#             u = (W512^k d) >> 15, bin k: (s - i u) >> 1, bin 256 - k: conj((s + i u) >> 1)
#             (per component), P = re**2 + im**2 (< 2**30). For k = 128 both name bin 128;
#             the second formula is the one kept. X ~ DFT512(x) / 512.
#   5. mel    bin k (5..239: 156.25..7468.75 Hz) lies between mel edges j and j+1 of 34
#             edges equally spaced in HTK mel from 125 to 7500 Hz; with q = MEL_Q[k] in
#             0..128 it adds lo = (P >> 7) * q to band j (rising side) and P - lo to band
#             j - 1 (falling side): every bin's power is counted exactly once (band sums
#             stay below 2**29).
#   6. log    L = 16 m + LOG_TAB[the 6 bits below the leading one of B], m = bitlen(B) - 1
#             (log2 with LOG_FRAC_BITS = 4), then
#             feature = clamp((L + 32 r - LOG_OFFSET) >> 1, 0, 255), 0 when B == 0.
#   In real units feature ~= 8 log2(E) - 114 = 16 log2(band amplitude) - 114, E the band's
#   energy in |DFT512(s * hann)|**2 units: 0.376 dB of amplitude per step, 0 at about
#   -90 dBFS (1-LSB hiss is 0), a full-scale square wave <= 250. Against a float log-mel
#   the integer one is within ~1 step for bands within 30 dB of the frame's loudest band;
#   its rounding floor is about 40 dB below that band. Every intermediate stays within
#   +/-2**30 (intermediate_ranges() shows it; the board's words are 32-bit).
#
# MODEL (int8 weights, int32 biases, all integer: the quantised path)
#   per frame     h1 = clamp((b1 + W1 . x) >> s1, 0, 255)     x: the 32 features, W1 [16, 32]
#                 into a ring of the last T = 48 h1 vectors; before frame 0 the ring holds
#                 h1 of all-zero features (the detector has heard digital silence).
#   on frames i with i % 2 == 1 (EVAL_EVERY = 2):
#                 h2 = clamp((b2 + W2 . h1[i-47 .. i]) >> s2, 0, 255)   (flattened oldest
#                      first: W2[:, 16 t + c] meets channel c of frame i - 47 + t)
#                 z  = (b3 + W3 . h2) >> s3                   the logit in 1/16 units
#                 score = SIG[clamp(z + 128, 0, 255)],  SIG[u] = round(255 sigmoid((u - 128) / 16))
#                 The score holds until the next evaluation (frames before the first: 0).
#   decision      detect at an evaluating frame when its score >= cutoff (N_AVG = 1: a mean
#                 of two scores, tried before, came 40 ms later for the same FRR and FA/h),
#                 except in the REFRACTORY = 50 frames after a detection (one at frame d
#                 blocks d+1 .. d+50).
#
# FOR THE TRAINER (to get in the firmware exactly what was measured here)
#   - Features: features(int16 16 kHz audio from the start of the clip). A window that
#     reaches back before the clip sees zeros there (the board: silence before the mic).
#   - The float twin of the integer model: x_f = x / 256; h1 = clip(W1 x_f + b1, 0, 4);
#     h2 = clip(W2 [h1, oldest first] + b2, 0, 4); logit = W3 h2 + b3 (4.0 is uint8 255).
#     modelfile.quantise() turns it into the integer model (power-of-two scales, rounding
#     folded into the biases); measure the RESULT with scores() / detect() /
#     window_scores(), never the float net: int8 weights and 1/16-logit steps move the
#     operating point.
#   - Evaluations happen only on odd frames, so a phrase that ends in frame e is judged at
#     e or e + 1 (positives are trained at 0..3 frames past the end, which also covers
#     the evaluation after that).
#   - Cost on the board: a ring that is mostly zeros is cheap (layer 2 skips zero h1
#     values: ~300 x86 instructions per non-zero value and evaluation, against ~200 k for a
#     dense ring); ReLU units that are off most of the time (about half or more) keep the
#     listening loop well inside its budget.
import numpy as np

FEATURE_VERSION = 1
RATE = 16000
HOP = 320
WINDOW = 512
BANDS = 32
FMIN = 125
FMAX = 7500
LOG_FRAC_BITS = 4
LOG_OFFSET = 420  # feature = (L + 32 r - LOG_OFFSET) >> 1
MEL_Q_BITS = 7
BIN_LO, BIN_HI = 5, 239  # the bins with a non-zero mel weight

FEATURE = {"FEATURE_VERSION": FEATURE_VERSION, "RATE": RATE, "HOP": HOP, "WINDOW": WINDOW,
           "BANDS": BANDS, "FMIN": FMIN, "FMAX": FMAX, "LOG_FRAC_BITS": LOG_FRAC_BITS,
           "LOG_OFFSET": LOG_OFFSET, "MEL_Q_BITS": MEL_Q_BITS}

C1, T, H2 = 16, 48, 32
EVAL_EVERY, N_AVG, REFRACTORY = 2, 1, 50
SIG_STEPS = 16  # table entries per unit of logit
ARCH = {"C1": C1, "T": T, "H2": H2, "EVAL_EVERY": EVAL_EVERY, "N_AVG": N_AVG, "REFRACTORY": REFRACTORY}

_CHUNK = 4096  # frames per vectorised block (bounded memory for hours of audio)


# --- tables (the firmware holds the same numbers as literals; a test compares them) --------


def _quarter_cos():
    # round(32768 cos(2 pi m / 512)) for m = 0..128
    return np.round(32768 * np.cos(2 * np.pi * np.arange(129) / 512)).astype(np.int64)


def cos512(m):
    # Q15 cosine of 2 pi m / 512 by exact quarter-wave symmetry, for any integer m (array).
    q = QCOS
    m = np.asarray(m) % 512
    out = np.where(m <= 128, q[np.minimum(m, 128)], 0)
    out = np.where((m > 128) & (m <= 256), -q[np.clip(256 - m, 0, 128)], out)
    out = np.where((m > 256) & (m <= 384), -q[np.clip(m - 256, 0, 128)], out)
    out = np.where(m > 384, q[np.clip(512 - m, 0, 128)], out)
    return out


def sin512(m):
    return cos512(np.asarray(m) - 128)


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_tables():
    edges = np.linspace(_mel(FMIN), _mel(FMAX), BANDS + 2)
    k = np.arange(BIN_LO, BIN_HI + 1)
    m = _mel(k * RATE / WINDOW)
    j = np.searchsorted(edges, m, side="right") - 1  # edges[j] <= m < edges[j + 1]
    frac = (m - edges[j]) / (edges[j + 1] - edges[j])
    q = np.round(frac * (1 << MEL_Q_BITS)).astype(np.int64)
    return j.astype(np.int64), q


def _log_table():
    f = np.arange(64)
    return np.round(16 * np.log2(1 + (f + 0.5) / 64)).astype(np.int64)


def _sig_table():
    u = np.arange(256)
    return np.round(255 / (1 + np.exp(-(u - 128) / SIG_STEPS))).astype(np.int64)


def _rev4():
    # digit reversal of 4 base-4 digits: DIT input order
    n = np.arange(256)
    return ((n & 3) << 6) | (((n >> 2) & 3) << 4) | (((n >> 4) & 3) << 2) | (n >> 6)


QCOS = _quarter_cos()
HANN = (32768 - cos512(np.arange(WINDOW))) >> 1
MEL_J, MEL_Q = _mel_tables()
LOG_TAB = _log_table()
SIG = _sig_table()
REV4 = _rev4()


def _stages():
    # Per radix-4 stage: index arrays of the 64 butterflies and their Q15 twiddles.
    out = []
    for L in (4, 16, 64, 256):
        q = L // 4
        g, k = np.meshgrid(np.arange(0, 256, L), np.arange(q), indexing="ij")
        i0 = (g + k).ravel()
        m = (k * (512 // L)).ravel()
        tw = [(cos512(j * m), -sin512(j * m)) for j in (1, 2, 3)]
        out.append((i0, q, tw))
    return out


_STAGES = _stages()


# --- features ----------------------------------------------------------------------------


def bitlen(v):
    # bit length of non-negative int64 values (exact: frexp of integers below 2**53)
    return np.frexp(np.asarray(v, np.float64))[1].astype(np.int64)


def _cmul(br, bi, wr, wi, audit=None, name="twiddle"):
    re, im = br * wr - bi * wi, br * wi + bi * wr
    _track(audit, name, re, im)
    return re >> 15, im >> 15


def _track(audit, name, *arrays):
    # records the largest |value| of a step (range audit: the board has 32-bit words)
    if audit is not None:
        m = max(int(np.abs(a).max()) if np.size(a) else 0 for a in arrays)
        audit[name] = max(audit.get(name, 0), m)


def _fft(zr, zi, audit=None):
    # In place on [F, 256] int64 arrays in digit-reversed (DIT) order.
    for i0, q, tw in _STAGES:
        a0r, a0i = zr[:, i0], zi[:, i0]
        b = []
        for j, (wr, wi) in enumerate(tw, 1):
            b.append(_cmul(zr[:, i0 + j * q], zi[:, i0 + j * q], wr, wi, audit))
        (b1r, b1i), (b2r, b2i), (b3r, b3i) = b
        t0r, t0i = a0r + b2r, a0i + b2i
        t1r, t1i = a0r - b2r, a0i - b2i
        t2r, t2i = b1r + b3r, b1i + b3i
        t3r, t3i = b1r - b3r, b1i - b3i
        outs = ((t0r + t2r, t0i + t2i), (t1r + t3i, t1i - t3r), (t0r - t2r, t0i - t2i), (t1r - t3i, t1i + t3r))
        for j, (yr, yi) in enumerate(outs):
            _track(audit, "butterfly sum", yr, yi)
            zr[:, i0 + j * q], zi[:, i0 + j * q] = yr >> 2, yi >> 2
        _track(audit, "fft value", zr, zi)


_K = np.arange(BIN_LO, 129)  # split pairs k (bin k, and bin 256 - k when k >= 17)


def _power(zr, zi, audit=None):
    # Power of bins BIN_LO..BIN_HI from the packed spectrum Z (natural order): [F, 235]
    P = np.zeros((len(zr), BIN_HI + 1), np.int64)
    k = _K
    m = (256 - k) % 256
    sr, si = (zr[:, k] + zr[:, m]) >> 1, (zi[:, k] - zi[:, m]) >> 1
    dr, di = (zr[:, k] - zr[:, m]) >> 1, (zi[:, k] + zi[:, m]) >> 1
    ur, ui = _cmul(dr, di, cos512(k), -sin512(k), audit, "split twiddle")
    xr, xi = (sr + ui) >> 1, (si - ur) >> 1
    P[:, k] = xr * xr + xi * xi
    sel = k >= 17
    yr, yi = (sr - ui) >> 1, (si + ur) >> 1
    P[:, 256 - k[sel]] = (yr * yr + yi * yi)[:, sel]
    _track(audit, "bin power", P)
    return P[:, BIN_LO:]


def _bands(P, audit=None):
    lo = (P >> MEL_Q_BITS) * MEL_Q
    _track(audit, "mel product", lo)
    acc = np.zeros((len(P), BANDS + 2), np.int64)
    for j in range(BANDS + 1):
        sel = MEL_J == j
        acc[:, j + 1] += lo[:, sel].sum(1)
        acc[:, j] += (P[:, sel] - lo[:, sel]).sum(1)
    _track(audit, "band", acc)
    return acc[:, 1:BANDS + 1]


def ilog2_q4(B):
    # 16 log2(B) for B >= 1 (int64 array); 0 where B == 0
    B = np.asarray(B, np.int64)
    m = bitlen(B) - 1
    mm = np.maximum(m, 0)
    f = np.where(m >= 6, B >> np.maximum(mm - 6, 0), B << np.maximum(6 - mm, 0)) - 64
    return np.where(B > 0, 16 * mm + LOG_TAB[np.clip(f, 0, 63)], 0)


def _frames_features(win, audit=None):
    # win: int64 [F, 512] windows -> uint8 [F, 32]
    a = (win ^ (win >> 15)).max(1)
    r = np.where((win != 0).any(1), bitlen(a) + 1, 0)
    prod = win * HANN
    _track(audit, "window product", prod)
    x = prod >> r[:, None]
    _track(audit, "fft input", x)
    zr = np.ascontiguousarray(x[:, 0::2][:, REV4])
    zi = np.ascontiguousarray(x[:, 1::2][:, REV4])
    _fft(zr, zi, audit)
    B = _bands(_power(zr, zi, audit), audit)
    L = ilog2_q4(B)
    f = np.clip((L + 32 * r[:, None] - LOG_OFFSET) >> 1, 0, 255)
    return np.where((B > 0) & (r[:, None] > 0), f, 0).astype(np.uint8)


def intermediate_ranges(pcm16):
    """{step: largest |value|} over the integer feature pipeline for this audio: every
    one must stay below 2**30 (the board's words are 32-bit; the unix port would hide an
    overflow)."""
    pcm = np.asarray(pcm16, np.int16)
    n = len(pcm) // HOP
    seg = np.concatenate([np.zeros(WINDOW - HOP, np.int64), pcm[:n * HOP].astype(np.int64)])
    win = np.lib.stride_tricks.sliding_window_view(seg, WINDOW)[::HOP][:n]
    audit = {}
    _frames_features(win, audit)
    return audit


def features(pcm16):
    """uint8 [len // 320, 32]: the board's features of 16 kHz int16 audio (from its start)."""
    pcm = np.asarray(pcm16)
    if pcm.dtype != np.int16:
        pcm = np.clip(pcm, -32768, 32767).astype(np.int16)
    n = len(pcm) // HOP
    out = np.zeros((n, BANDS), np.uint8)
    pad = WINDOW - HOP
    for i in range(0, n, _CHUNK):
        e = min(n, i + _CHUNK)
        lo = i * HOP - pad
        seg = pcm[max(lo, 0):e * HOP].astype(np.int64)
        if lo < 0:
            seg = np.concatenate([np.zeros(-lo, np.int64), seg])
        win = np.lib.stride_tricks.sliding_window_view(seg, WINDOW)[::HOP]
        out[i:e] = _frames_features(win[:e - i])
    return out


# --- model -------------------------------------------------------------------------------


class Model:
    """A loaded model: meta (dict), tensors (dict of int arrays), shifts s1, s2, s3."""

    def __init__(self, meta, tensors):
        self.meta = meta
        self.t = {k: np.asarray(v, np.int64) for k, v in tensors.items()}
        arch = meta["arch"]
        self.s1, self.s2, self.s3 = int(arch["s1"]), int(arch["s2"]), int(arch["s3"])

    def cutoff(self, name="default"):
        return int(self.meta["sensitivities"][name]["cutoff"])


def as_model(model):
    """Accepts a Model, (meta, tensors) or a model file path."""
    if isinstance(model, Model):
        return model
    if isinstance(model, tuple):
        return Model(*model)
    from host_tools.wake import modelfile

    return Model(*modelfile.load(model))


def layer1(model, feats):
    """uint8 [n, 16]: h1 of every frame."""
    m = as_model(model)
    x = np.asarray(feats, np.int64)
    a1 = x @ m.t["w1"].T + m.t["b1"]
    return np.clip(a1 >> m.s1, 0, 255).astype(np.uint8)


def _eval_scores(m, feats):
    # Scores of the evaluating frames 1, 3, 5, ... -> (frame indices, uint8 scores)
    h1 = layer1(m, feats).astype(np.float64)
    zero = layer1(m, np.zeros((1, BANDS), np.uint8)).astype(np.float64)
    h1 = np.concatenate([np.repeat(zero, T - 1, 0), h1])
    n = len(feats)
    ev = np.arange(EVAL_EVERY - 1, n, EVAL_EVERY)
    w2 = m.t["w2"].astype(np.float64)  # exact: every sum stays far below 2**53
    w3 = m.t["w3"].astype(np.float64)
    out = np.zeros(len(ev), np.int64)
    for i in range(0, len(ev), _CHUNK):
        e = ev[i:i + _CHUNK]
        win = h1[e[:, None] + np.arange(T)[None, :]].reshape(len(e), T * C1)
        a2 = (win @ w2.T).astype(np.int64) + m.t["b2"]
        h2 = np.clip(a2 >> m.s2, 0, 255)
        z = (h2.astype(np.float64) @ w3).astype(np.int64) + m.t["b3"][0]
        out[i:i + len(e)] = SIG[np.clip((z >> m.s3) + 128, 0, 255)]
    return ev, out


def window_logits(model, windows):
    """int [B]: (b3 + W3 . h2) >> s3, the logit in 1/16 units that an evaluation computes
    when the ring holds these 48 frames of features (uint8 [B, 48, 32], oldest first)."""
    m = as_model(model)
    w = np.asarray(windows, np.int64)
    h1 = layer1(m, w.reshape(-1, BANDS)).astype(np.float64).reshape(len(w), T * C1)
    a2 = (h1 @ m.t["w2"].astype(np.float64).T).astype(np.int64) + m.t["b2"]
    h2 = np.clip(a2 >> m.s2, 0, 255)
    z = (h2.astype(np.float64) @ m.t["w3"].astype(np.float64)).astype(np.int64) + m.t["b3"][0]
    return z >> m.s3


def window_scores(model, windows):
    """uint8 [B]: the score (0..255) of an evaluation whose ring holds these windows."""
    return SIG[np.clip(window_logits(model, windows) + 128, 0, 255)].astype(np.uint8)


def scores(model, feats):
    """uint8 [n]: the detector's score at every frame (held between evaluations)."""
    m = as_model(model)
    n = len(feats)
    ev, s = _eval_scores(m, feats)
    held = np.zeros(n, np.int64)
    if len(ev):
        idx = np.searchsorted(ev, np.arange(n), side="right") - 1
        held = np.where(idx >= 0, s[np.maximum(idx, 0)], 0)
    return held.astype(np.uint8)


def detect(model, feats, cutoff):
    """Frame indices where the board's detector fires at this cutoff (0..255)."""
    m = as_model(model)
    cutoff = m.cutoff(cutoff) if isinstance(cutoff, str) else int(cutoff)
    ev, s = _eval_scores(m, feats)
    return greedy_events(ev, s, cutoff, REFRACTORY)  # N_AVG = 1: each score on its own


def greedy_events(pos, values, cutoff, refractory):
    """Detections: the first position whose value reaches the cutoff, then nothing until
    `refractory` positions (frames, samples...) have passed. Returns positions."""
    idx = np.flatnonzero(values >= cutoff)
    out = []
    i = 0
    while i < len(idx):
        p = int(pos[idx[i]])
        out.append(p)
        i = int(np.searchsorted(pos[idx], p + refractory + 1))
    return out


def firmware_literals():
    """The tables as the firmware holds them (hex), to regenerate its literals."""
    def hx(a, width):
        return np.asarray(a, "<u%d" % width).tobytes().hex()

    return {"QCOS": hx(QCOS, 2), "MEL_J": hx(MEL_J, 1), "MEL_Q": hx(MEL_Q, 1),
            "LOG_TAB": hx(LOG_TAB, 1), "SIG": hx(SIG, 1)}
