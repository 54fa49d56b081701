# Training the wake-word detector (`earshot wake train`), in NumPy on the CPU.
#
# The float network is the firmware's detector before quantisation, term for term:
#   per 20 ms frame   h1 = clip(W1 . x/256 + b1, 0, CAP)        x: 32 uint8 features
#   every 2 frames    h2 = clip(W2 . [h1 of the last 48 frames, oldest first] + b2, 0, CAP)
#                     logit = W3 . h2 + b3
# (the clip at CAP is the uint8 range the firmware requantises h1 and h2 to).
# Training sees 48-frame windows: positives end 0-3 frames after the phrase ends;
# negatives come from the negative stream (speech, near-misses, noise, music), from
# negative clips (plus degraded copies, the noise bank and generic synthetic tones) and
# from the start of positive clips (the phrase not yet complete). Batches are a quarter
# positives. After each epoch the negative windows the network scores highest (stream,
# clips) become hard-negative pools that later batches draw from. Inputs are standardised
# per band and ReLU gradients leak a little in training; both fold away or vanish in the
# integer model. Adam, cosine learning-rate decay, dropout on the layer-2 input. The trained
# network is quantised with modelfile's helpers and the QUANTISED model is measured with
# reference.scores on held-out audio (voices, texts and noises not used for training)
# to set the three sensitivity cutoffs stored in the model file.
import contextlib
import hashlib
import math
import os
import sys
import time
from pathlib import Path

from host_tools.errors import CommandError

T = 48  # frames in the layer-2 window (0.96 s)
HOP = 320  # samples per feature frame (20 ms at 16 kHz)
N_IN, N1, N2 = 32, 16, 32
IN_SCALE = 1 / 256  # float input = uint8 feature / 256
CAP = 4.0  # h1 and h2 saturate here (uint8 255 after quantisation)
LEAK = 0.01  # gradient slope outside 0..CAP in training
POS_OFFSETS = (0, 1, 2, 3)  # positive windows end this many frames after the phrase end
EARLY_GAP = 20  # windows ending this many frames (0.4 s) or more before the end are negatives
NEG_AUG_SHARE = 0.3  # negative clips that also appear degraded (noise, reverb, gain)
FEATURE_CACHE_VERSION = 2

# Work per training size. "quick" is for tests and a first look (about a minute with a
# cold cache); "full" is the shipped model (< 30 min on 2 cores, corpus and calibration
# included; most of it is making the audio, which data.py caches).
PLANS = {
    "quick": {"corpus": "quick", "extra_pos": 120, "tones": 150, "stream_hours": 0.1, "pos_aug": 2,
              "calib_hours": 0.05, "calib_pos": 24,
              "epochs": 16, "steps": 60, "batch": 256, "lr": 3e-3, "hard": 256},
    "full": {"corpus": "full", "extra_pos": 0, "tones": 1500, "stream_hours": 3.0, "pos_aug": 2,
             "calib_hours": 2.0, "calib_pos": 300,
             "epochs": 40, "steps": 300, "batch": 512, "lr": 2e-3, "hard": 4000, "vary": 0.35},
}


# --- BLAS threads ------------------------------------------------------------------------


@contextlib.contextmanager
def one_blas_thread():
    """Runs the block with OpenBLAS on one thread. The tall, thin matrix products of backprop
    are 10-100x slower with 2 threads as soon as anything else wants the 2 cores (pytest -n 2,
    the corpus workers): measured 0.12 s vs 19 s for the same 600 products."""
    fns = _openblas_threads()
    if fns is None:
        yield
        return
    get, set_ = fns
    old = get()
    set_(1)
    try:
        yield
    finally:
        set_(max(1, old))


def _openblas_threads():
    import ctypes
    import re

    import numpy  # noqa: F401  (loads its OpenBLAS)

    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for lib_path in sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", maps))):
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError:
            continue
        for suffix in ("64_", "_64_", ""):
            try:
                get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}")
                set_ = getattr(lib, f"scipy_openblas_set_num_threads{suffix}")
            except AttributeError:
                try:
                    get = getattr(lib, f"openblas_get_num_threads{suffix}")
                    set_ = getattr(lib, f"openblas_set_num_threads{suffix}")
                except AttributeError:
                    continue
            get.restype = ctypes.c_int
            set_.argtypes = [ctypes.c_int]
            return get, set_
    return None


# --- the float network -----------------------------------------------------------------


class Net:
    """Float twin of the firmware detector, with manual backprop (Adam)."""

    def __init__(self, rng, x_mean, x_std):
        import numpy as np

        f32 = np.float32
        # Inputs are standardised per band in training: (x - mu) / sd. That is only a
        # reparametrisation of layer 1 (folded() gives the firmware's W1 . x + b1), but it
        # conditions the gradients far better than raw 0..255 values.
        self.mu = np.asarray(x_mean, f32)
        self.sd = np.maximum(np.asarray(x_std, f32), f32(1.0))
        self.p = {
            "w1": rng.normal(0, math.sqrt(2 / N_IN), (N1, N_IN)).astype(f32),
            "b1": np.full(N1, 0.1, f32),
            "w2": rng.normal(0, math.sqrt(2 / (T * N1)), (N2, T * N1)).astype(f32),
            "b2": np.full(N2, 0.1, f32),
            "w3": rng.normal(0, math.sqrt(1 / N2), N2).astype(f32),
            "b3": np.zeros(1, f32),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = 0

    def _x(self, u8):
        import numpy as np

        return (u8.astype(np.float32) - self.mu) / self.sd

    def folded(self):
        # The parameters for raw inputs x_f = uint8 * IN_SCALE, as modelfile.quantise wants.
        p = dict(self.p)
        w = self.p["w1"] / self.sd
        p["w1"] = w / IN_SCALE
        p["b1"] = self.p["b1"] - w @ self.mu
        return p

    def forward(self, xw, train=False, rng=None, dropout=0.0):
        # xw: uint8 [B, T, 32] windows -> logits [B] (and the cache for backward).
        import numpy as np

        p = self.p
        x = self._x(xw)
        a1 = x @ p["w1"].T + p["b1"]
        h1 = np.clip(a1, 0, CAP)
        f = h1.reshape(len(xw), T * N1)
        if train and dropout:
            keep = (rng.random(f.shape, dtype=np.float32) >= dropout) / np.float32(1 - dropout)
            f = f * keep
        else:
            keep = None
        a2 = f @ p["w2"].T + p["b2"]
        h2 = np.clip(a2, 0, CAP)
        z = h2 @ p["w3"] + p["b3"][0]
        return z, (x, a1, f, keep, a2, h2)

    def backward(self, cache, dz):
        import numpy as np

        x, a1, f, keep, a2, h2 = cache
        p = self.p
        g = {"w3": h2.T @ dz, "b3": np.array([dz.sum()], np.float32)}
        # Outside 0..CAP the gradient leaks (slope LEAK) instead of stopping: units that
        # went quiet on every window can come back (the forward pass is the exact clip).
        da2 = np.outer(dz, p["w3"]) * np.where((a2 > 0) & (a2 < CAP), np.float32(1), np.float32(LEAK))
        g["w2"] = da2.T @ f
        g["b2"] = da2.sum(0)
        df = da2 @ p["w2"]
        if keep is not None:
            df *= keep
        da1 = df.reshape(a1.shape) * np.where((a1 > 0) & (a1 < CAP), np.float32(1), np.float32(LEAK))
        da1 = da1.reshape(-1, N1)
        g["w1"] = da1.T @ x.reshape(-1, N_IN)
        g["b1"] = da1.sum(0)
        return g

    def step(self, g, lr, weight_decay=1e-4, b1=0.9, b2=0.999, eps=1e-8):
        self.t += 1
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for k, w in self.p.items():
            gk = g[k] + weight_decay * w if k.startswith("w") else g[k]
            self.m[k] = b1 * self.m[k] + (1 - b1) * gk
            self.v[k] = b2 * self.v[k] + (1 - b2) * gk * gk
            w -= lr * (self.m[k] / c1) / ((self.v[k] / c2) ** 0.5 + eps)

    def layer1(self, feats):
        # Per-frame h1 of a whole feature matrix [n, 32] -> float32 [n, 16].
        import numpy as np

        return np.clip(self._x(feats) @ self.p["w1"].T + self.p["b1"], 0, CAP)

    def stream_logits(self, feats, ends, chunk=8192):
        # Logits of the windows ending at frames `ends` of one long feature matrix.
        import numpy as np

        h1 = self.layer1(feats)
        w2 = self.p["w2"].reshape(N2, T, N1)
        out = np.empty(len(ends), np.float32)
        for i in range(0, len(ends), chunk):
            e = ends[i:i + chunk]
            idx = e[:, None] - (T - 1) + np.arange(T)[None, :]
            f = h1[idx].reshape(len(e), T * N1)
            h2 = np.clip(f @ w2.reshape(N2, -1).T + self.p["b2"], 0, CAP)
            out[i:i + chunk] = h2 @ self.p["w3"] + self.p["b3"][0]
        return out

    def activation_ranges(self, xw):
        # The top of the (clipped) activations on sample windows: what uint8 255 stands for.
        _, (x, a1, f, keep, a2, h2) = self.forward(xw)
        return {"h1": float(min(CAP, a1.max())), "h2": float(min(CAP, a2.max()))}


def bce_grad(z, y, w):
    # Weighted binary cross-entropy on logits: (mean loss, d loss / d z).
    import numpy as np

    loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    s = 1 / (1 + np.exp(-z))
    wsum = w.sum()
    dz = (w * (s - y) / wsum).astype(np.float32)
    dz[np.abs(dz) < 1e-12] = 0  # tiny gradients turn into float32 denormals: 20x slower matmuls
    return float((w * loss).sum() / wsum), dz


# --- features for a corpus -----------------------------------------------------------


FEATURE_WORKERS = 2


def _clip_features(pcm):
    import numpy as np

    from host_tools.wake import reference

    return np.asarray(reference.features(pcm), np.uint8)


class FeatureSet:
    """Features of many clips in one array. Window ending at frame e of clip i is
    feats[start[i] + e - T + 1 : start[i] + e + 1]; every clip is padded at its start
    with T-1 all-zero frames (digital silence: what the board's ring starts with) so that
    windows may end at any frame."""

    def __init__(self, feats, start, n, labels, ends, sources):
        self.feats, self.start, self.n = feats, start, n
        self.labels, self.ends, self.sources = labels, ends, sources

    @classmethod
    def from_clips(cls, items, progress=None):
        # items: iterable of (pcm int16, label, end sample or None, source str). The
        # features are computed by two worker processes, in order, while this one makes
        # the (augmented) audio.
        import multiprocessing

        import numpy as np

        blocks, start, n, labels, ends, sources = [], [], [], [], [], []
        total = 0
        meta = []  # appended by the pool's feeder thread before each clip is sent

        def audio():
            for pcm, label, end, source in items:
                meta.append((label, end, source))
                yield np.asarray(pcm, np.int16)

        with multiprocessing.get_context("spawn").Pool(FEATURE_WORKERS) as pool:
            for k, f in enumerate(pool.imap(_clip_features, audio(), chunksize=16)):
                label, end, source = meta[k]
                if progress and k and k % 2000 == 0:
                    progress(k)
                if len(f) == 0:
                    continue
                blocks += [np.zeros((T - 1, N_IN), np.uint8), f]  # digital silence, then the clip
                start.append(total + T - 1)
                total += T - 1 + len(f)
                n.append(len(f))
                labels.append(int(label))
                ends.append(-1 if end is None else end_frame(end))
                sources.append(str(source))
        feats = np.concatenate(blocks) if blocks else np.zeros((0, N_IN), np.uint8)
        return cls(feats, np.array(start, np.int64), np.array(n, np.int64), np.array(labels, np.int8),
                   np.array(ends, np.int64), np.array(sources))

    def save(self, path):
        import numpy as np

        tmp = Path(str(path) + ".part.npz")
        np.savez(tmp, feats=self.feats, start=self.start, n=self.n, labels=self.labels,
                 ends=self.ends, sources=self.sources)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            return cls(z["feats"], z["start"], z["n"], z["labels"], z["ends"], z["sources"])

    def windows(self, clip_idx, end_frames):
        import numpy as np

        base = self.start[clip_idx] + end_frames - (T - 1)
        return self.feats[base[:, None] + np.arange(T)[None, :]]

    def clip(self, i):
        return self.feats[self.start[i]:self.start[i] + self.n[i]]


def end_frame(end_sample):
    # The feature frame in which the phrase has just ended: frame k covers samples up to
    # (k + 1) * HOP, so the first frame that has heard sample `end_sample - 1`.
    return max(0, (int(end_sample) + HOP - 1) // HOP - 1)


def cache_dir():
    # Next to data.py's audio cache (~/.cache/earshot/wake or $EARSHOT_WAKE_CACHE).
    path = Path(_data().default_cache_dir()) / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cache_key(*parts):
    from host_tools.wake import reference

    stamp = [FEATURE_CACHE_VERSION, _source_stamp(reference), _source_stamp(_data())]
    return hashlib.sha1(repr((stamp, parts)).encode()).hexdigest()[:16]


def _source_stamp(module):
    # Features change when the reference or the data generator changes: key on their source.
    try:
        return hashlib.sha1(Path(module.__file__).read_bytes()).hexdigest()[:12]
    except (OSError, AttributeError, TypeError):
        return "?"


def _data():
    from host_tools.wake import data

    return data


def cached(name, parts, build, log):
    path = cache_dir() / f"{name}-{_cache_key(name, *parts)}.npz"
    if path.exists():
        try:
            fs = FeatureSet.load(path)
            log(f"{name}: {len(fs.n)} clips, {len(fs.feats) / 50 / 3600:.2f} h of features (cached)")
            return fs
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)
    t0 = time.monotonic()
    fs = build()
    fs.save(path)
    log(f"{name}: {len(fs.n)} clips, {len(fs.feats) / 50 / 3600:.2f} h of features "
        f"({time.monotonic() - t0:.0f} s)")
    return fs


def corpus_features(phrase, split, size, seed, pos_aug, log, progress=False, extra_pos=0, tones=0):
    """Features of data.make_corpus(...) plus `extra_pos` more positives (data.positive_set)
    and `pos_aug` augmented copies of each positive."""
    import numpy as np

    data = _data()

    def build():
        clips = list(data.make_corpus(phrase, split, size=size, seed=seed, progress=progress))
        if extra_pos:
            clips += data.positive_set(phrase, split, extra_pos, seed=seed + 17, progress=progress)
        rng = np.random.default_rng(seed + 7919)
        bank = _noise_bank(data, split, seed, size)

        def items():
            for c in clips:
                yield c.pcm, c.label, c.end, c.source
                if c.label == 1 and pos_aug:
                    for _ in range(pos_aug):
                        yield data.augment(c.pcm, rng, bank, end=c.end), 1, c.end, c.source + "+aug"
                elif c.label == 0 and rng.random() < NEG_AUG_SHARE:
                    yield data.augment(c.pcm, rng, bank), 0, None, c.source + "+aug"
            for k, pcm in enumerate(bank):  # the background sounds on their own
                yield pcm, 0, None, f"noisebank:{k}"
            for k, pcm in enumerate(synthetic_tones(rng, tones)):
                yield pcm, 0, None, f"tones:{k}"
                if rng.random() < NEG_AUG_SHARE:
                    yield data.augment(pcm, rng, bank), 0, None, f"tones:{k}+aug"

        t0 = time.monotonic()
        return FeatureSet.from_clips(items(), progress=lambda k: log(
            f"features: {k} clips (augmented copies included), {time.monotonic() - t0:.0f} s"))

    return cached("corpus", (phrase, split, size, seed, pos_aug, extra_pos, tones), build, log)


def synthetic_tones(rng, n, seconds=3.0):
    """`n` clips of generic tonal sound (int16): sequences of notes made of harmonic or
    inharmonic partials with random decays, plus glides. Not speech, and not modelled on any
    recipe of data.py: they teach the network that sustained partials alone are not the
    phrase (a ReLU network otherwise extrapolates wildly on tonal sounds it never saw)."""
    import numpy as np

    sr = 16000
    out = []
    for _ in range(n):
        m = int(seconds * sr)
        x = np.zeros(m)
        t = np.arange(m) / sr
        notes = int(rng.integers(1, 12))
        for _ in range(notes):
            at = int(rng.uniform(0, 0.9) * m)
            f0 = float(np.exp(rng.uniform(np.log(60), np.log(2500))))
            if rng.random() < 0.5:
                ratios = np.arange(1, int(rng.integers(2, 12)))
            else:
                ratios = np.sort(rng.uniform(1, 9, int(rng.integers(2, 8))))
            decay = float(rng.uniform(0.05, 2.5))
            glide = float(rng.uniform(-1, 1)) if rng.random() < 0.2 else 0.0
            tt = t[:m - at]
            env = np.exp(-tt / decay) * np.minimum(1, tt / 0.005)
            phase = 2 * np.pi * f0 * (tt + glide * tt * tt / 2)
            note = sum(np.sin(r * phase + rng.uniform(0, 6.3)) * rng.uniform(0.1, 1) / r ** rng.uniform(0, 1.5)
                       for r in ratios if r * f0 * (1 + abs(glide) * seconds) < 7800)
            x[at:] += env * note
        peak = np.abs(x).max()
        if peak > 0:
            x *= 10 ** (rng.uniform(-40, -3) / 20) * 32767 / peak
        x += rng.normal(0, 10 ** (rng.uniform(-70, -50) / 20) * 32767, m)
        out.append(np.clip(x, -32768, 32767).astype(np.int16))
    return out


def _noise_bank(data, split, seed, size="full"):
    return data.make_noise_bank(split, seed=seed, size=size, progress=False)


def stream_features(split, hours, seed, log, progress=False):
    data = _data()

    def build():
        pcm = data.negative_stream(split, hours, seed=seed, progress=progress)
        return FeatureSet.from_clips([(pcm, 0, None, f"stream-{split}")])

    return cached("stream", (split, hours, seed), build, log)


def positive_features(phrase, split, n, seed, log, bank="full"):
    # The held-out positives exactly as `earshot wake eval` measures them (degraded, padded).
    from host_tools.wake import evaluate

    def build():
        return FeatureSet.from_clips((pcm, 1, end, "pos") for pcm, end in
                                     evaluate.heldout_positives(phrase, n, seed, split=split, bank_size=bank))

    return cached("positives", (phrase, split, n, seed, evaluate.POSITIVE_PROTOCOL, bank), build, log)


# --- training ----------------------------------------------------------------------------


class WindowPools:
    """Index pools (clip, end frame) of training windows, by kind."""

    def __init__(self, corpus, stream, rng):
        import numpy as np

        pos, early, negclip = [], [], []
        for i in range(len(corpus.n)):
            n = int(corpus.n[i])
            if corpus.labels[i] == 1 and corpus.ends[i] >= 0:
                e = int(corpus.ends[i])
                for off in POS_OFFSETS:
                    if e + off < n:
                        pos.append((i, e + off))
                for k in range(0, max(0, e - EARLY_GAP + 1), 2):
                    early.append((i, k))
            elif corpus.labels[i] == 0:
                for k in range(0, n, 2):
                    negclip.append((i, k))
        self.pos = np.array(pos, np.int64).reshape(-1, 2)
        self.early = np.array(early, np.int64).reshape(-1, 2)
        self.negclip = np.array(negclip, np.int64).reshape(-1, 2)
        self.stream_ends = np.arange(0, int(stream.n[0]), dtype=np.int64) if len(stream.n) else np.zeros(0, np.int64)
        self.hard = np.zeros(0, np.int64)  # end frames in the stream
        self.hard_clip = np.zeros((0, 2), np.int64)  # (clip, end frame) in negative clips / early windows
        if len(self.pos) == 0:
            raise CommandError("the training corpus holds no positive clip with a phrase end; "
                               "check the phrase (espeak-ng must be able to say it)")


def _batch(corpus, stream, pools, rng, size, pos_frac=0.25):
    import numpy as np

    n_pos = int(size * pos_frac)
    n_neg = size - n_pos
    p = pools.pos[rng.integers(0, len(pools.pos), n_pos)]
    parts, ys = [corpus.windows(p[:, 0], p[:, 1])], [np.ones(n_pos, np.float32)]
    shares = [("stream", 0.35), ("negclip", 0.2), ("early", 0.1), ("hard", 0.2), ("hard_clip", 0.15)]
    avail = {"stream": len(pools.stream_ends), "negclip": len(pools.negclip),
             "early": len(pools.early), "hard": len(pools.hard), "hard_clip": len(pools.hard_clip)}
    total = sum(s for k, s in shares if avail[k])
    counts = {k: int(round(n_neg * s / total)) if avail[k] else 0 for k, s in shares}
    for kind, k in counts.items():
        if not k:
            continue
        if kind in ("stream", "hard"):
            src = pools.stream_ends if kind == "stream" else pools.hard
            e = src[rng.integers(0, len(src), k)]
            parts.append(stream.windows(np.zeros(k, np.int64), e))
        else:
            src = getattr(pools, kind)
            q = src[rng.integers(0, len(src), k)]
            parts.append(corpus.windows(q[:, 0], q[:, 1]))
        ys.append(np.zeros(k, np.float32))
    return np.concatenate(parts), np.concatenate(ys)


def vary_windows(xb, rng, share):
    """Feature-domain variety for a `share` of the windows of a batch (positives and
    negatives alike), each kind drawn on its own: another level (+-12 dB: 16 feature units
    per 6 dB), another vocal tract (the bands shifted by up to 1.2 bands, about +-10 % in
    formant frequency above 1 kHz) and SpecAugment-style masks (up to 3 bands, up to 4
    frames, set to the window's mean). All-zero features (digital silence) stay zero."""
    import numpy as np

    if share <= 0:
        return xb
    b, t, n = xb.shape
    x = xb.astype(np.float32)
    silent = xb == 0
    pick = lambda: np.flatnonzero(rng.random(b) < share)  # noqa: E731
    i = pick()
    x[i] += rng.uniform(-32, 32, (len(i), 1, 1)).astype(np.float32)
    i = pick()
    if len(i):
        src = np.clip(np.arange(n)[None, :] + rng.uniform(-1.2, 1.2, (len(i), 1)), 0, n - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        w = (src - lo).astype(np.float32)[:, None, :]
        xi = x[i]
        x[i] = (np.take_along_axis(xi, lo[:, None, :].repeat(t, 1), 2) * (1 - w)
                + np.take_along_axis(xi, hi[:, None, :].repeat(t, 1), 2) * w)
    mean = x.mean(axis=(1, 2))
    for k in pick():
        f0, fw = int(rng.integers(0, n)), int(rng.integers(1, 4))
        x[k, :, f0:f0 + fw] = mean[k]
        t0, tw = int(rng.integers(0, t)), int(rng.integers(1, 5))
        x[k, t0:t0 + tw, :] = mean[k]
    x[silent] = 0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def mine_hard(net, stream, limit, min_gap=10):
    # The highest-scoring windows of the negative stream, at most one per `min_gap` frames.
    import numpy as np

    n = int(stream.n[0])
    ends = np.arange(0, n, dtype=np.int64)
    z = net.stream_logits(stream.feats[stream.start[0] - (T - 1):stream.start[0] + n], ends + (T - 1))
    # local maxima over min_gap-frame blocks
    nb = n // min_gap
    zb = z[:nb * min_gap].reshape(nb, min_gap)
    arg = zb.argmax(1)
    best = zb[np.arange(nb), arg]
    order = np.argsort(-best)[:limit]
    return (order * min_gap + arg[order]).astype(np.int64), float(best[order[-1]] if len(order) else 0), z


def mine_hard_clips(net, corpus, candidates, limit, chunk=8192):
    # The highest-scoring negative-clip and early windows.
    import numpy as np

    if not len(candidates):
        return candidates
    z = np.concatenate([net.forward(corpus.windows(c[:, 0], c[:, 1]))[0]
                        for c in np.array_split(candidates, max(1, len(candidates) // chunk))])
    return candidates[np.argsort(-z)[:limit]]


def train_net(corpus, stream, plan, seed, log):
    import numpy as np

    rng = np.random.default_rng(seed)
    pools = WindowPools(corpus, stream, rng)
    log(f"windows: {len(pools.pos)} positive, {len(pools.negclip)} negative-clip, "
        f"{len(pools.early)} early, {len(pools.stream_ends)} stream")
    sample = corpus.feats[::7].astype(np.float32)
    net = Net(rng, sample.mean(0), sample.std(0))
    epochs, steps, batch = plan["epochs"], plan["steps"], plan["batch"]
    t0 = time.monotonic()
    for ep in range(epochs):
        tl, n = 0.0, 0
        for s in range(steps):
            frac = (ep * steps + s) / (epochs * steps)
            lr = plan["lr"] * (0.5 * (1 + math.cos(math.pi * frac)) * 0.95 + 0.05)
            xb, yb = _batch(corpus, stream, pools, rng, batch)
            xb = vary_windows(xb, rng, plan.get("vary", 0.0))
            wb = np.ones(len(yb), np.float32)
            z, cache = net.forward(xb, train=True, rng=rng, dropout=0.1)
            loss, dz = bce_grad(z, yb, wb)
            net.step(net.backward(cache, dz), lr)
            tl, n = tl + loss, n + 1
        hard, hard_z, _ = mine_hard(net, stream, plan["hard"])
        pools.hard_clip = mine_hard_clips(net, corpus, np.concatenate([pools.negclip, pools.early]), plan["hard"])
        # the newest mined windows first; keep the pool at three epochs' worth
        merged = np.concatenate([hard, pools.hard])
        _, first = np.unique(merged, return_index=True)
        pools.hard = merged[np.sort(first)][:plan["hard"] * 3]
        el = time.monotonic() - t0
        eta = el / (ep + 1) * (epochs - ep - 1)
        log(f"epoch {ep + 1}/{epochs}  loss {tl / n:.4f}  hard negatives {len(pools.hard)} "
            f"(weakest logit {hard_z:+.2f})  {el:.0f} s, ETA {eta:.0f} s")
    _, _, z = mine_hard(net, stream, 1)
    net.stream_max_logit = float(z.max()) if len(z) else 0.0
    return net


def temperature_for(net, corpus, stream, rng, target=5.0):
    # The score table saturates at a logit of about 6 (score 255). Scale the logit so that
    # the top of what training saw, positives (99th percentile) or 1.5 x the highest
    # negative stream logit (held-out audio goes higher), lands at `target` (score 254):
    # strict cutoffs then stay distinct instead of all sitting at 255.
    import numpy as np

    pools = WindowPools(corpus, stream, rng)
    q = pools.pos[rng.integers(0, len(pools.pos), 4000)]
    z = net.forward(corpus.windows(q[:, 0], q[:, 1]))[0]
    top = max(float(np.percentile(z, 99)), 1.5 * getattr(net, "stream_max_logit", 0.0))
    return max(1.0, top / target)


# --- quantise, calibrate, save ----------------------------------------------------------


def quantise(net, sample_windows, temperature=1.0):
    """The float network as the integer model of reference.py: (shifts, tensors), by
    modelfile.quantise. uint8 255 of h1 / h2 stands for the top of that layer's clipped
    activations on real windows (at most CAP).

    The logit is divided by `temperature` first. That changes no ranking, only where the
    scores fall in the 0..255 sigmoid table, which saturates at a logit of about 6: a
    temperature above 1 keeps strict cutoffs apart from each other."""
    from host_tools.wake import modelfile

    p = net.folded()
    ranges = net.activation_ranges(sample_windows)
    r1, r2 = max(ranges["h1"], 1e-3), max(ranges["h2"], 1e-3)
    tensors, shifts = modelfile.quantise(p["w1"], p["b1"], p["w2"], p["b2"], p["w3"] / temperature,
                                         p["b3"] / temperature, in_scale=IN_SCALE, h1_scale=r1 / 255,
                                         h2_scale=r2 / 255)
    return shifts, tensors


def model_meta(phrase, shifts, sens=None, trained=None):
    from host_tools.wake import modelfile

    meta = modelfile.make_meta(phrase, shifts, trained=trained)
    if sens:
        meta["sensitivities"] = sens
    return meta


def calibration_features(phrase, plan, seed, log):
    from host_tools.wake.evaluate import bank_size

    pos = positive_features(phrase, "heldout", plan["calib_pos"], seed + 1, log, bank_size(plan["calib_hours"]))
    return pos, stream_features("heldout", plan["calib_hours"], seed + 1, log)


def in_background(work):
    """Runs work() on a thread; the returned function waits and returns its result (or
    raises its error). Training uses one core: the held-out audio is made on the other."""
    import threading

    box = {}

    def run():
        try:
            box["result"] = work()
        except BaseException as e:  # handed to the caller on join
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]

    return join


def calibrate(model, phrase, plan, seed, log):
    """Measures the quantised model on held-out audio; returns (sensitivities, curve)."""
    from host_tools.wake import evaluate

    pos, stream = calibration_features(phrase, plan, seed, log)
    t0 = time.monotonic()
    curve = evaluate.curve_ours(model, [pos.clip(i) for i in range(len(pos.n))], list(pos.ends),
                                stream.clip(0), stream.n[0] * HOP / 16000 / 3600)
    sens = evaluate.pick_sensitivities(curve)
    log(f"calibrated on {len(pos.n)} held-out positives and {curve.hours:.2f} h of held-out stream "
        f"({time.monotonic() - t0:.0f} s)")
    return sens, curve


def train_to_file(phrase, out, quick=False, seed=0, log=None):
    with one_blas_thread():
        return _train_to_file(phrase, out, quick, seed, log)


def _train_to_file(phrase, out, quick, seed, log):
    import numpy as np

    from host_tools.wake import modelfile

    log = log or _log
    phrase = " ".join(phrase.split())
    if not phrase:
        raise CommandError("--phrase is empty; give the wake phrase, e.g. --phrase \"hey jarvis\"")
    out = Path(out)
    if not out.parent.is_dir():
        raise CommandError(f"{out}: directory {out.parent} does not exist; create it or choose another --out")
    size = "quick" if quick else "full"
    plan = PLANS[size]
    t_start = time.monotonic()
    log(f"training {phrase!r} ({size}), seed {seed}")
    corpus = corpus_features(phrase, "train", plan["corpus"], seed, plan["pos_aug"], log,
                             extra_pos=plan["extra_pos"], progress=True, tones=plan["tones"])
    stream = stream_features("train", plan["stream_hours"], seed, log, progress=True)
    t_data = time.monotonic() - t_start
    heldout_ready = in_background(lambda: calibration_features(phrase, plan, seed, log))
    net = train_net(corpus, stream, plan, seed, log)
    heldout_ready()
    rng = np.random.default_rng(seed + 1)
    pools = WindowPools(corpus, stream, rng)
    sample, _ = _batch(corpus, stream, pools, rng, 2048)
    tau = temperature_for(net, corpus, stream, np.random.default_rng(seed + 2))
    arch, tensors = quantise(net, sample, tau)
    log(f"quantised: shifts {arch}, logit / {tau:.2f} (training stream's top negative logit "
        f"{net.stream_max_logit:+.2f})")
    model = (model_meta(phrase, arch), tensors)
    sens, curve = calibrate(model, phrase, plan, seed, log)
    meta = model_meta(phrase, arch, sens, {"size": size, "seed": seed, "seconds": round(time.monotonic() - t_start),
                    "data_seconds": round(t_data), "clips": int(len(corpus.n)),
                    "positives": int((corpus.labels == 1).sum()),
                    "stream_hours": plan["stream_hours"], "temperature": round(tau, 3), "calibration": {
                        "positives": curve.n_pos, "hours": round(curve.hours, 3), "split": "heldout",
                        "seed": seed + 1}})
    modelfile.save(out, meta, tensors)
    for level in ("low", "default", "high"):
        s = sens[level]
        log(f"  {level:8s} cutoff {s['cutoff']:3d}  FRR {100 * s['frr']:5.1f} %  FA/h {s['fa_per_hour']:.2f}")
    log(f"wrote {out} ({out.stat().st_size} bytes) in {time.monotonic() - t_start:.0f} s")
    return meta


def _log(msg):
    print(f"wake train: {msg}", file=sys.stderr, flush=True)
