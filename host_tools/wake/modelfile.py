# Wake-word model files on the host: write, read, check, quantise. One format for host
# and board (firmware/earshot/wakemodel.py reads it):
#   b"EWW1" | u32 little-endian n | n bytes of UTF-8 JSON metadata, space-padded so the
#   data starts 4-byte aligned | the tensors, little-endian, at metadata["tensors"][i]
#   ["offset"] bytes after the JSON, in the order w1 b1 w2 b2 w3 b3.
# Metadata: {"format": 1, "phrase", "feature": {FEATURE_VERSION, RATE, ...}, "arch": {C1, T,
# H2, EVAL_EVERY, N_AVG, REFRACTORY, s1, s2, s3}, "sensitivities": {"low"|"default"|"high":
# {"cutoff": 0..255, "fa_per_hour": float|null, "frr": float|null}}, "trained": {...},
# "tensors": [{"name", "dtype", "shape", "offset"}, ...]}.
#
# QUANTISATION (quantise()): the integer model of reference.py with per-layer power-of-two
# weight scales. A float layer y = clip(W x_f + b, 0, cap) whose input x_f = x * in_scale
# (x the integer input) and whose output is read back as y = h * out_scale (h the uint8
# output) becomes
#     h = clamp((round(b / out_scale * 2**s) + 2**(s-1) + sum(Wq x)) >> s, 0, 255),
#     Wq = round(W * in_scale / out_scale * 2**s)   (int8)
# with the largest s (0..24) for which max |Wq| <= 127 and |bias| < 2**26: the shift
# replaces a multiplier and the 2**(s-1) turns the floor of >> into rounding. The logit
# layer uses out_scale = 1/16 (one step of the score table per 1/16 of logit) and no
# rounding term (the table index is floor(logit * 16)).
import json
import os
from pathlib import Path

import numpy as np

from host_tools.errors import CommandError
from host_tools.wake import reference

MAGIC = b"EWW1"
FORMAT = 1
TENSORS = (("w1", "int8", (reference.C1, reference.BANDS)), ("b1", "int32", (reference.C1,)),
           ("w2", "int8", (reference.H2, reference.T * reference.C1)), ("b2", "int32", (reference.H2,)),
           ("w3", "int8", (reference.H2,)), ("b3", "int32", (1,)))
SENSITIVITIES = ("low", "default", "high")
BIAS_LIMIT = 1 << 26  # |bias| below this keeps every integer sum within 2**30
MAX_META = 16384


class ModelError(CommandError):
    """A model file that cannot be used; the message says why (and what to do)."""


def make_meta(phrase, shifts, cutoffs=(160, 200, 230), trained=None, rates=None):
    """Metadata for a model: shifts {s1, s2, s3}, cutoffs (low, default, high) 0..255,
    rates {"low": (fa_per_hour, frr), ...} from a measurement, if any."""
    rates = rates or {}
    sens = {}
    for name, c in zip(SENSITIVITIES, cutoffs):
        fa, frr = rates.get(name, (None, None))
        sens[name] = {"cutoff": int(c), "fa_per_hour": fa, "frr": frr}
    arch = dict(reference.ARCH)
    arch.update({k: int(shifts[k]) for k in ("s1", "s2", "s3")})
    return {"format": FORMAT, "phrase": phrase, "feature": dict(reference.FEATURE), "arch": arch,
            "sensitivities": sens, "trained": trained or {}}


def check(meta, tensors, where="model"):
    """Raises ModelError unless meta + tensors are a model this firmware runs."""
    if not isinstance(meta, dict):
        raise ModelError(f"{where}: metadata is not a JSON object")
    for section, wants, what, advice in (
            ("feature", reference.FEATURE, "feature", "; retrain the model (or update the firmware)"),
            ("arch", reference.ARCH, "architecture", "")):
        got = meta.get(section)
        if not isinstance(got, dict):
            raise ModelError(f"{where}: metadata has no '{section}' object")
        for key, want in wants.items():
            if key not in got:
                raise ModelError(f"{where}: the model lacks {what} parameter {key} (this firmware: {want})")
            if got[key] != want:
                raise ModelError(f"{where}: {what} parameter {key} is {got[key]} in the model but "
                                 f"{want} in this firmware{advice}")
    arch = meta["arch"]
    for key in ("s1", "s2", "s3"):
        v = arch.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 24:
            raise ModelError(f"{where}: shift {key} must be an integer 0..24, not {v}")
    sens = meta.get("sensitivities")
    if not isinstance(sens, dict):
        raise ModelError(f"{where}: metadata has no 'sensitivities' object")
    for name in SENSITIVITIES:
        s = sens.get(name)
        c = s.get("cutoff") if isinstance(s, dict) else None
        if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 255:
            raise ModelError(f"{where}: sensitivity {name} needs an integer cutoff 0..255, not {c}")
    for name, dtype, shape in TENSORS:
        if name not in tensors:
            raise ModelError(f"{where}: tensor {name} is missing")
        a = np.asarray(tensors[name])
        if a.shape != shape:
            raise ModelError(f"{where}: tensor {name} should have shape {list(shape)}, not {list(a.shape)}")
        lo, hi = (-128, 127) if dtype == "int8" else (-BIAS_LIMIT + 1, BIAS_LIMIT - 1)
        if a.size and (a.min() < lo or a.max() > hi):
            raise ModelError(f"{where}: tensor {name} has values outside {lo}..{hi}")


def save(path, meta, tensors):
    """Writes a model file (atomically: a complete file or none)."""
    meta = dict(meta)
    meta.setdefault("format", FORMAT)
    check(meta, tensors, str(path))
    data = encode(meta, tensors)
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def encode(meta, tensors):
    """The bytes of a model file, unchecked (save() checks first; tests use this to make
    broken files)."""
    meta = dict(meta)
    entries, blobs, off = [], [], 0
    for name, dtype, shape in TENSORS:
        data = np.ascontiguousarray(np.asarray(tensors[name]), "<i1" if dtype == "int8" else "<i4").tobytes()
        entries.append({"name": name, "dtype": dtype, "shape": list(np.shape(tensors[name])), "offset": off})
        pad = (-len(data)) % 4
        blobs.append(data + b"\0" * pad)
        off += len(data) + pad
    meta["tensors"] = entries
    js = json.dumps(meta, sort_keys=True).encode()
    js += b" " * ((-(8 + len(js))) % 4)
    if len(js) > MAX_META:
        raise ModelError(f"metadata is {len(js)} bytes; the board reads at most {MAX_META}")
    return MAGIC + len(js).to_bytes(4, "little") + js + b"".join(blobs)


def load(path):
    """-> (meta, tensors as int64 arrays). Raises ModelError for anything unusable."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read model file {path} ({e.strerror or e})")
    if raw[:4] != MAGIC or len(raw) < 8:
        raise ModelError(f"{path} is not an earshot wake-word model (no EWW1 header)")
    n = int.from_bytes(raw[4:8], "little")
    if n > MAX_META:
        raise ModelError(f"{path}: metadata of {n} bytes is too large (corrupt file?)")
    if len(raw) < 8 + n:
        raise ModelError(f"{path} is truncated: metadata cut short")
    try:
        meta = json.loads(raw[8:8 + n])
    except ValueError:
        raise ModelError(f"{path}: metadata is not valid JSON (corrupt file?)")
    if not isinstance(meta, dict) or not isinstance(meta.get("tensors"), list):
        raise ModelError(f"{path}: metadata must be an object listing the tensors")
    data = raw[8 + n:]
    tensors = {}
    listed = {e.get("name"): e for e in meta["tensors"] if isinstance(e, dict)}
    for name, dtype, shape in TENSORS:
        e = listed.get(name)
        if e is None or e.get("dtype") != dtype or tuple(e.get("shape") or ()) != shape:
            raise ModelError(f"{path}: tensor {name} should be {dtype} {list(shape)}")
        off, size = e.get("offset"), int(np.prod(shape)) * (1 if dtype == "int8" else 4)
        if not isinstance(off, int) or off < 0 or off % 4:
            raise ModelError(f"{path}: tensor {name} has a bad offset {off}")
        if off + size > len(data):
            raise ModelError(f"{path} is truncated: tensor {name} needs {size} bytes at {off}, "
                             f"the file has {max(0, len(data) - off)}")
        a = np.frombuffer(data, "<i1" if dtype == "int8" else "<i4", int(np.prod(shape)), off)
        tensors[name] = a.reshape(shape).astype(np.int64)
    check(meta, tensors, str(path))
    return meta, tensors


# --- quantisation ------------------------------------------------------------------------


def _layer(w, b, in_scale, out_scale, rounding=True):
    # the largest shift s (0..24) at which max |Wq| <= 127 and every bias fits
    ws = np.asarray(w, np.float64) * (in_scale / out_scale)
    bs = np.asarray(b, np.float64) / out_scale
    for s in range(24, -1, -1):
        wq = np.round(ws * 2.0 ** s)
        bq = np.round(bs * 2.0 ** s) + ((1 << (s - 1)) if rounding and s > 0 else 0)
        if (np.abs(wq).max() if wq.size else 0) <= 127 and np.abs(bq).max() < BIAS_LIMIT:
            return wq.astype(np.int64), bq.astype(np.int64), s
    raise ModelError("cannot quantise: weights too large for int8 even without a shift "
                     f"(max |w * in_scale / out_scale| = {np.abs(ws).max():.1f}); rescale the layer")


def quantise(w1, b1, w2, b2, w3, b3, in_scale=1 / 256, h1_scale=4 / 255, h2_scale=4 / 255):
    """Float weights -> (tensors, shifts) of the integer model (see the header).

    The float network this mirrors: x_f = features * in_scale; h1 = clip(w1 x_f + b1, 0,
    255 h1_scale); h2 = clip(w2 [h1 of 48 frames, oldest first] + b2, 0, 255 h2_scale);
    logit = w3 h2 + b3. Shapes: w1 [16, 32], w2 [32, 768], w3 [32] (or [1, 32]), b3 [1]."""
    w1q, b1q, s1 = _layer(w1, b1, in_scale, h1_scale)
    w2q, b2q, s2 = _layer(w2, b2, h1_scale, h2_scale)
    w3q, b3q, s3 = _layer(np.ravel(w3), np.ravel(b3)[:1], h2_scale, 1 / reference.SIG_STEPS, rounding=False)
    tensors = {"w1": w1q, "b1": b1q, "w2": w2q, "b2": b2q, "w3": w3q, "b3": b3q}
    return tensors, {"s1": s1, "s2": s2, "s3": s3}


def random_model(seed, phrase="test", fire=False):
    """(meta, tensors) of a random model for tests. Its shifts are set on random features
    so that h1, h2 and the score use their whole range. With fire=True the score follows
    the loudness of the last second instead: loud audio (features around 150, e.g. noise
    at -20 dBFS) scores 255, quiet audio 0, so it detects on loud stretches."""
    rng = np.random.default_rng(seed)
    C1, T, H2, B = reference.C1, reference.T, reference.H2, reference.BANDS
    if fire:
        tensors = {"w1": np.full((C1, B), 4), "b1": np.full(C1, -4 * B * 110),
                   "w2": np.full((H2, T * C1), 2), "b2": np.full(H2, -20000),
                   "w3": np.full(H2, 8), "b3": np.array([-24000])}
        shifts = {"s1": 6, "s2": 9, "s3": 4}
    else:
        tensors = {"w1": rng.integers(-128, 128, (C1, B)), "b1": rng.integers(-3000, 3000, C1) * 8,
                   "w2": rng.integers(-128, 128, (H2, T * C1)), "b2": rng.integers(-3000, 3000, H2) * 64,
                   "w3": rng.integers(-128, 128, H2), "b3": rng.integers(-3000, 3000, 1)}
        x = rng.integers(0, 200, (400, B))
        a1 = x @ tensors["w1"].T + tensors["b1"]
        s1 = _range_shift(a1)
        h1 = np.clip(a1 >> s1, 0, 255)
        win = h1[rng.integers(0, len(h1), (200, T))].reshape(200, T * C1)
        a2 = win @ tensors["w2"].T + tensors["b2"]
        s2 = _range_shift(a2)
        z = np.clip(a2 >> s2, 0, 255) @ tensors["w3"] + tensors["b3"][0]
        s3 = max(0, int(np.ceil(np.log2(max(1.0, np.percentile(np.abs(z), 90) / 64)))))
        shifts = {"s1": s1, "s2": s2, "s3": s3}
    meta = make_meta(phrase, shifts, trained={"kind": "random", "seed": seed, "fire": fire})
    return meta, tensors


def _range_shift(a):
    # the shift that maps the 90th percentile of the positive part to about 200
    top = float(np.percentile(np.maximum(a, 0), 90))
    return max(0, min(24, int(np.ceil(np.log2(max(1.0, top / 200))))))
