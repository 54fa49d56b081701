# Loads a wake-word model file on the board and checks it fits this firmware.
#
# File: b"EWW1", u32 little-endian length n, n bytes of UTF-8 JSON metadata (padded with
# spaces so the data starts 4-byte aligned), then the tensors at the byte offsets (from
# the end of the JSON) that metadata["tensors"] lists. host_tools/wake/modelfile.py writes
# the same format. Anything that does not fit raises ModelError with one clear line.
import array
import json
import struct

import micropython
from micropython import const

from earshot import features

MAGIC = b"EWW1"
_MAX_META = const(16384)
_BIAS_LIMIT = const(0x4000000)  # |bias| < 2**26 keeps every accumulator within 2**30

# The detector's fixed shape (detector.py); a model with another one is refused.
ARCH = {"C1": 16, "T": 48, "H2": 32, "EVAL_EVERY": 2, "N_AVG": 1, "REFRACTORY": 50}
# name, dtype, shape, in the order they are stored
TENSORS = (("w1", "int8", [16, 32]), ("b1", "int32", [16]), ("w2", "int8", [32, 768]),
           ("b2", "int32", [32]), ("w3", "int8", [32]), ("b3", "int32", [1]))
SENSITIVITIES = ("low", "default", "high")


class ModelError(Exception):
    pass


class Model:
    # The weights as the detector uses them: int8 tensors as bytearrays of w + 128 (viper
    # loads bytes unsigned), W2 transposed to [768][32]; b3, b1[16], b2[32] in one int32
    # array, each + BIAS (non-negative words read the same on every port); shifts s1..s3.
    BIAS = 0x20000000

    def __init__(self, meta, t):
        self.phrase = meta.get("phrase", "")
        arch = meta["arch"]
        self.s1, self.s2, self.s3 = arch["s1"], arch["s2"], arch["s3"]
        sens = meta["sensitivities"]
        self.cutoffs = tuple(sens[k]["cutoff"] for k in SENSITIVITIES)
        self.w1, self.w2, self.w3 = t["w1"], t["w2"], t["w3"]
        self.bias = array.array("i", [b + self.BIAS for b in t["b3"] + t["b1"] + t["b2"]])

    def cutoff(self, name="default"):
        if name not in SENSITIVITIES:
            raise ModelError("no sensitivity %r; the model has %s" % (name, ", ".join(SENSITIVITIES)))
        return self.cutoffs[SENSITIVITIES.index(name)]


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
        raise ModelError("%s: not enough RAM for the model (it needs about 26 KiB)" % path)
    except Exception as e:  # whatever a damaged file does, the caller gets one clear error
        raise ModelError("%s is damaged (%s: %s)" % (path, type(e).__name__, e))
    finally:
        f.close()


def _parse(f, path):
    head = f.read(8)
    if len(head) < 8 or head[:4] != MAGIC:
        raise ModelError("%s is not an earshot wake-word model (no EWW1 header)" % path)
    n = struct.unpack("<I", head[4:])[0]
    if n > _MAX_META:
        raise ModelError("%s: metadata of %d bytes is too large (corrupt file?)" % (path, n))
    raw = f.read(n)
    if len(raw) < n:
        raise ModelError("%s is truncated: metadata cut short" % path)
    try:
        meta = json.loads(raw)
    except ValueError:
        raise ModelError("%s: metadata is not valid JSON (corrupt file?)" % path)
    del raw
    if not isinstance(meta, dict):
        raise ModelError("%s: metadata is not a JSON object" % path)
    check_meta(meta, path)
    return Model(meta, _tensors(f, meta["tensors"], path))


def _section(meta, key, path):
    v = meta.get(key)
    if not isinstance(v, dict):
        raise ModelError("%s: metadata has no %r object" % (path, key))
    return v


def check_meta(meta, path="model"):
    feat = _section(meta, "feature", path)
    for key, want in features.FEATURE.items():
        if key not in feat:
            raise ModelError("%s: the model lacks feature parameter %s (this firmware: %s)" % (path, key, want))
        if feat[key] != want:
            raise ModelError("%s: feature parameter %s is %s in the model but %s in this firmware; "
                             "retrain the model (or update the firmware)" % (path, key, feat[key], want))
    arch = _section(meta, "arch", path)
    for key, want in ARCH.items():
        if key not in arch:
            raise ModelError("%s: the model lacks architecture parameter %s (this firmware: %s)"
                             % (path, key, want))
        if arch[key] != want:
            raise ModelError("%s: architecture parameter %s is %s in the model but %s in this firmware"
                             % (path, key, arch[key], want))
    for key in ("s1", "s2", "s3"):
        v = arch.get(key)
        if not isinstance(v, int) or not 0 <= v <= 24:
            raise ModelError("%s: shift %s must be an integer 0..24, not %s" % (path, key, v))
    sens = _section(meta, "sensitivities", path)
    for name in SENSITIVITIES:
        s = sens.get(name)
        c = s.get("cutoff") if isinstance(s, dict) else None
        if not isinstance(c, int) or not 0 <= c <= 255:
            raise ModelError("%s: sensitivity %s needs an integer cutoff 0..255, not %s" % (path, name, c))
    listed = meta.get("tensors")
    if not isinstance(listed, list) or len(listed) != len(TENSORS):
        raise ModelError("%s: metadata must list the %d tensors %s" % (
            path, len(TENSORS), " ".join(t[0] for t in TENSORS)))
    for entry, (name, dtype, shape) in zip(listed, TENSORS):
        if not isinstance(entry, dict):
            raise ModelError("%s: tensor entry %r is not an object" % (path, entry))
        got = (entry.get("name"), entry.get("dtype"), entry.get("shape"))
        if got != (name, dtype, shape):
            raise ModelError("%s: tensor %s should be %s %s, the model has %s %s %s" % (
                path, name, dtype, shape, got[0], got[1], got[2]))
        off = entry.get("offset")
        if not isinstance(off, int) or off < 0 or off % 4:
            raise ModelError("%s: tensor %s has a bad offset %s" % (path, name, off))


def _size(dtype, shape):
    n = 1
    for d in shape:
        n *= d
    return n * (4 if dtype == "int32" else 1)


def _tensors(f, listed, path):
    base = f.tell()
    out = {}
    for entry, (name, dtype, shape) in zip(listed, TENSORS):
        size = _size(dtype, shape)
        f.seek(base + entry["offset"])
        if name == "w2":
            out[name] = _read_transposed(f, shape[0], shape[1], path)
            continue
        buf = bytearray(size)
        _read(f, buf, path, name)
        if dtype == "int8":
            _unsign(buf, size)
            out[name] = buf
        else:
            vals = [struct.unpack_from("<i", buf, 4 * i)[0] for i in range(size // 4)]
            for v in vals:
                if not -_BIAS_LIMIT < v < _BIAS_LIMIT:
                    raise ModelError("%s: bias %s in %s is out of range (|b| < 2**26)" % (path, v, name))
            out[name] = vals
    return out


def _read(f, buf, path, name):
    got = f.readinto(buf)
    if got != len(buf):
        raise ModelError("%s is truncated: tensor %s is cut short" % (path, name))


def _read_transposed(f, rows, cols, path):
    # [rows][cols] int8 from the file -> [cols][rows] of w + 128, one row at a time
    out = bytearray(rows * cols)
    row = bytearray(cols)
    for r in range(rows):
        _read(f, row, path, "w2")
        _scatter(out, row, r, rows, cols)
    return out


@micropython.viper
def _scatter(out: ptr8, row: ptr8, r: int, stride: int, n: int):
    i = 0
    while i < n:
        out[r + stride * i] = row[i] ^ 0x80
        i += 1


@micropython.viper
def _unsign(buf: ptr8, n: int):
    # int8 two's complement -> w + 128, in place
    i = 0
    while i < n:
        buf[i] = buf[i] ^ 0x80
        i += 1
