# Loads a wake-word model file on the board (host_tools/wake/convert.py writes it from a
# microWakeWord v2 model) and checks it, so that inference.py can trust every offset.
# Anything wrong raises ModelError with one line; the board then falls back to
# push-to-talk.
#
# File: b"EWN2", u32 n, n bytes of JSON metadata (space-padded to a multiple of 4), then
# `program` int32 words, then `blob` bytes; adler32 of program + blob in the metadata.
# The program (all words 0 <= w < 2**31: ptr32 loads read them the same on every port):
#   header  16 words: ops, rings, stride (feature frames per invocation), the input
#           quantiser (mul, add, shift, cap: q + 128 = (min(u, cap) mul + add) >> shift),
#           the logistic table's offset in the blob, the output ring, the most channels
#           of any op, the program's length in words
#   rings   6 words each: byte offset in the ring state, bytes per frame (channels padded
#           to 4), frames, the slot of the newest frame, its initial value, and the initial
#           content (a byte value 0..255, or 256 + the blob offset of all the ring's bytes);
#           a DELTA op's kept sums are a one-frame ring of their own
#   ops     12 words each: kind (0 dense, the last op only: FULLY_CONNECTED; 1 depthwise;
#           2 convolution in column order; flags: 16 requantise with one rounding, as
#           BUILTIN_REF's FULLY_CONNECTED does; 32 FAST, every shift >= 5; 64 DELTA, a column
#           op over one frame that keeps its sums), source ring, frames, c0 (depthwise: the
#           first channel; column order: the input zero point + 128; DELTA: the byte offset
#           of its sums in the ring state), blob offset of the weights (uint8 = int8 + 128;
#           dense [out][frames][channels], depthwise [frames][channels], column order
#           [frames][channels][out]), output channels (padded to 4 but dense), blob offset
#           of the per-channel parameters, destination ring, its first channel, output zero
#           point, clamp low and high (all + 128)
#   last    bytes of ring state
# Per-channel parameters, 8 bytes: u16 M >> 15, u16 M & 0x7FFF (M: TFLite's multiplier,
# 2**30 <= M < 2**31), u32 ((bias + 2**22) << 8) | the right shift s (1..29; s - 5 in a
# FAST op), the bias with the input zero point folded in (not in column order).
# The loader keeps the program in an int32 array with room after it for the runtime: an
# accumulator per output channel, then a uint16 per channel (the exact requantiser's list).
# One Net per Model: the Net keeps its ring positions there too.
import array
import json

from earshot.inference import SENSITIVITIES, Model

import micropython
from micropython import const

MAGIC = b"EWN2"
VERSION = 2
EXT = ".eww"  # a model named in settings without an extension is NAME.eww

_MAX_META = const(8192)
_MAX_WORDS = const(4096)
_MAX_BLOB = const(262144)
_MAX_CHANNELS = const(1024)
HEADER = const(16)
H_NOPS = const(0)
H_NBUF = const(1)
H_STRIDE = const(2)
H_QMUL = const(3)
H_QADD = const(4)
H_QSHIFT = const(5)
H_QCAP = const(6)
H_TABLE = const(7)
H_OUTBUF = const(8)
H_MAXC = const(9)
H_WORDS = const(10)
B_BASE = const(0)
B_STRIDE = const(1)
B_FRAMES = const(2)
B_LAST = const(3)
B_LAST0 = const(4)
B_INIT = const(5)
BUF_WORDS = const(6)
O_KIND = const(0)
O_SRC = const(1)
O_FRAMES = const(2)
O_C0 = const(3)
O_W = const(4)
O_COUT = const(5)
O_PAR = const(6)
O_DST = const(7)
O_DOFF = const(8)
O_ZP = const(9)
O_LO = const(10)
O_HI = const(11)
OP_WORDS = const(12)
FEATURES = const(40)
ROUND_ONCE = const(16)  # kind flag: one rounding in the requantisation (FULLY_CONNECTED), not two
FAST = const(32)  # kind flag: every channel's shift is >= 5 and stored - 5 (the fast requantiser)
DELTA = const(64)  # kind flag: a column op keeping its sums in the ring state at c0


class ModelError(Exception):
    pass


def load(path):
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ModelError("cannot open model file %s (%s)" % (path, e))
    try:
        return _parse(f, path)
    except ModelError:
        raise
    except MemoryError:
        raise ModelError("%s: not enough RAM for the model" % path)
    except Exception as e:  # whatever a damaged file does, the caller gets one clear error
        raise ModelError("%s is damaged (%s: %s)" % (path, type(e).__name__, e))
    finally:
        f.close()


def _parse(f, path):
    head = f.read(8)
    if 4 <= len(head) < 8 and head[:4] == MAGIC:
        raise ModelError("%s is truncated: header cut short" % path)
    if len(head) < 8 or head[:4] != MAGIC:
        if head[:3] == b"EWN" or head[:3] == b"EWW":
            raise ModelError("%s: model file version %s; this firmware reads %s (convert the model again)"
                             % (path, head[:4].decode(), MAGIC.decode()))
        raise ModelError("%s is not an earshot wake-word model (no %s header)" % (path, MAGIC.decode()))
    n = int.from_bytes(head[4:8], "little")
    if n > _MAX_META or (8 + n) % 4:
        raise ModelError("%s: bad metadata length %d (corrupt file?)" % (path, n))
    raw = f.read(n)
    if len(raw) < n:
        raise ModelError("%s is truncated: metadata cut short" % path)
    try:
        meta = json.loads(raw)
    except ValueError:
        raise ModelError("%s: metadata is not valid JSON (corrupt file?)" % path)
    del raw
    _check_meta(meta, path)
    nw, nb = meta["program"], meta["blob"]
    words = _read_words(f, nw, path)
    blob = bytearray(nb)
    if f.readinto(blob) != nb:
        raise ModelError("%s is truncated: weights cut short" % path)
    if f.read(1):
        raise ModelError("%s has data after the weights (corrupt file?)" % path)
    if _adler(words, 4 * nw, blob, nb) != meta["adler32"]:
        raise ModelError("%s is corrupted: checksum mismatch" % path)
    _check_program(words, nw, nb, path)
    words.extend(array.array("i", bytes(4 * (words[H_MAXC] + (words[H_MAXC] + 1) // 2))))
    return Model(meta, words, blob)


def _read_words(f, nw, path):
    words = array.array("i", bytes(4 * nw))
    if f.readinto(words) != 4 * nw:
        raise ModelError("%s is truncated: program cut short" % path)
    for i in range(nw):
        if words[i] < 0:
            raise ModelError("%s: program word %d is negative (corrupt file?)" % (path, i))
    return words


def _check_meta(meta, path):
    if not isinstance(meta, dict):
        raise ModelError("%s: metadata is not a JSON object" % path)
    if meta.get("format") != VERSION:
        raise ModelError("%s: model format %s; this firmware reads %d (convert the model again)"
                         % (path, meta.get("format"), VERSION))
    for key, lo, hi in (("program", HEADER + 1, _MAX_WORDS), ("blob", 256, _MAX_BLOB), ("window", 1, 100),
                        ("adler32", 0, 0xFFFFFFFF)):
        v = meta.get(key)
        if not isinstance(v, int) or not lo <= v <= hi:
            raise ModelError("%s: metadata %s must be an integer %d..%d, not %r" % (path, key, lo, hi, v))
    if not isinstance(meta.get("phrase"), str):
        raise ModelError("%s: metadata has no phrase" % path)
    sens = meta.get("sensitivities")
    for name in SENSITIVITIES:
        s = sens.get(name) if isinstance(sens, dict) else None
        c = s.get("cutoff") if isinstance(s, dict) else None
        if not isinstance(c, int) or not 0 <= c <= 255:
            raise ModelError("%s: sensitivity %s needs an integer cutoff 0..255, not %r" % (path, name, c))


def _bad(path, what):
    raise ModelError("%s: %s (corrupt or unsupported model)" % (path, what))


def _check_program(w, nw, nb, path):
    # Every offset the runtime follows must stay inside its buffer.
    nops, nbuf, maxc = w[H_NOPS], w[H_NBUF], w[H_MAXC]
    if not (1 <= nops <= 64 and 2 <= nbuf <= 32 and nw == HEADER + BUF_WORDS * nbuf + OP_WORDS * nops + 1
            and w[H_WORDS] == nw):
        _bad(path, "program size does not match %d ops and %d rings" % (nops, nbuf))
    if not (1 <= w[H_STRIDE] <= 8 and 4 <= maxc <= _MAX_CHANNELS and w[H_TABLE] + 256 <= nb):
        _bad(path, "bad program header")
    top = w[H_QCAP] * w[H_QMUL] + w[H_QADD]
    if w[H_QSHIFT] > 30 or w[H_QCAP] > 65535 or top >= 1 << 30 or top >> w[H_QSHIFT] > 255:
        _bad(path, "input quantiser out of range")
    rings = w[nw - 1]
    for b in range(HEADER, HEADER + BUF_WORDS * nbuf, BUF_WORDS):
        base, stride, frames, last, last0, init = w[b:b + BUF_WORDS]
        if stride < 4 or stride % 4 or frames < 1 or base % 4 or base + stride * frames > rings \
                or last >= frames or last0 >= frames:
            _bad(path, "ring %d out of bounds" % ((b - HEADER) // BUF_WORDS))
        if init > 255 and (init - 256 + stride * frames > nb):
            _bad(path, "ring %d's initial state out of bounds" % ((b - HEADER) // BUF_WORDS))
    first = w[HEADER:HEADER + BUF_WORDS]
    if first[B_STRIDE] < FEATURES or first[B_FRAMES] < w[H_STRIDE]:
        _bad(path, "the input ring cannot take %d frames of %d features" % (w[H_STRIDE], FEATURES))
    _ring_word(w, w[H_OUTBUF], nbuf, path)
    for o in range(HEADER + BUF_WORDS * nbuf, nw - 1, OP_WORDS):
        _check_op(w, o, nbuf, maxc, nb, rings, path)
        if (w[o] & 15 == 0) != (o == nw - 1 - OP_WORDS):
            _bad(path, "the dense op is not the last one")


def _ring_word(w, at, nbuf, path):
    if at < HEADER or at >= HEADER + BUF_WORDS * nbuf or (at - HEADER) % BUF_WORDS:
        _bad(path, "an op or the output names no ring")
    return w[at:at + BUF_WORDS]


def _check_op(w, o, nbuf, maxc, nb, rings, path):
    kind, src, frames, c0, wt, cout, par, dst, doff, zp, lo, hi = w[o:o + OP_WORDS]
    delta = kind & DELTA
    kind &= ~(ROUND_ONCE | FAST | DELTA)
    s = _ring_word(w, src, nbuf, path)
    d = _ring_word(w, dst, nbuf, path)
    pad = cout if kind == 0 else (cout + 3) // 4 * 4  # the runtime's channels, padded to 4
    ok = 1 <= frames <= s[B_FRAMES] and 1 <= pad <= maxc and par % 4 == 0 and par + 8 * pad <= nb \
        and doff + pad <= d[B_STRIDE] and zp <= 255 and lo <= hi <= 255
    if kind == 0:
        ok = ok and c0 == 0 and wt + cout * frames * s[B_STRIDE] <= nb
    elif kind == 2 and delta:  # the previous frame and the sums (and their inputs' sum)
        ok = ok and frames == 1 and s[B_FRAMES] >= 2 and wt + cout * s[B_STRIDE] + pad - cout <= nb \
            and c0 % 4 == 0 and c0 + 4 * (pad + 1) <= rings
    elif kind == 2:  # (the padding channels read on past the weights)
        ok = ok and c0 <= 255 and wt + cout * frames * s[B_STRIDE] + pad - cout <= nb
    elif kind == 1:
        ok = ok and c0 % 4 == 0 and c0 + pad <= s[B_STRIDE] and wt + frames * pad <= nb
    else:
        ok = False
    if delta and kind != 2:
        ok = False
    if not ok:
        _bad(path, "op %d out of bounds" % ((o - HEADER - BUF_WORDS * nbuf) // OP_WORDS))


def _adler(words, nw, blob, nb):
    # zlib's adler32 of the program's bytes then the blob's, 2 KiB at a time (the viper
    # sums stay below 2**30; the modulo is done here)
    st = array.array("i", (1, 0))
    for buf, n in ((words, nw), (blob, nb)):
        at = 0
        while at < n:
            k = min(2048, n - at)
            _adler_part(buf, at, k, st)
            st[0] %= 65521
            st[1] %= 65521
            at += k
    return (st[1] << 16) | st[0]


@micropython.viper
def _adler_part(buf: ptr8, at: int, k: int, st: ptr32):
    a = st[0]
    b = st[1]
    p = ptr8(uint(buf) + at)
    i = 0
    while i < k:
        a += p[i]
        b += a
        i += 1
    st[0] = a
    st[1] = b
