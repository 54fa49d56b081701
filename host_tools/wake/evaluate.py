# Measuring wake-word detectors the same way (`earshot wake eval`, and the cutoffs that
# `earshot wake train` stores in a model file).
#
# A positive clip counts as detected if a detection fires within [phrase end - 0.5 s,
# phrase end + 1.0 s]; FRR is the share of positive clips without one. A false accept is
# any detection on the negative stream, each refractory-separated detection counted;
# FA/h divides by the stream's length. Each positive clip is run from a fresh detector
# state; the stream is run as one long recording.
#
# Ours is measured with reference.scores (the bit-exact NumPy mirror of the firmware
# detector): the decision value at each evaluation is the mean of the last N_AVG scores (1),
# a detection fires when it reaches the cutoff and is followed by a refractory period.
# microWakeWord (pymicro-wakeword's hey_jarvis v2 model) is run on the same audio with
# its own features, its mean of the last 5 probabilities and a 0.75 s refractory period.
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

RATE = 16000
HOP = 320
BEFORE_S, AFTER_S = 0.5, 1.0  # a positive is detected within [end - 0.5 s, end + 1.0 s]
FA_TARGETS = {"low": 0.1, "default": 0.5, "high": 2.0}  # FA/h each sensitivity aims at
MAX_FA_PER_HOUR = 100.0  # sweeps stop below the cutoff where the stream passes this
MWW_REFRACTORY_S = 0.75  # ESPHome ignores ~74 slices of 10 ms after a detection
MWW_CUTOFFS = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999]
MWW_MODELS = {"hey jarvis": "HEY_JARVIS", "okay nabu": "OKAY_NABU", "ok nabu": "OKAY_NABU",
              "hey mycroft": "HEY_MYCROFT", "alexa": "ALEXA"}


# How held-out positives are presented (eval and the cutoffs set by train): each clip of
# data.positive_set is degraded with augment() using the held-out noise bank (noise at
# 5-20 dB SNR with p 0.8, reverberation p 0.5, far-field colouring p 0.5, speed p 0.5, gain
# -20..+6 dB), then 0.5 s of its own lead-in is appended, so that every clip runs to at
# least 1.0 s after the phrase end (positive_set cuts it at 0.5 s).
POSITIVE_PROTOCOL = "augment-heldout-snr5-20+lead-tail-v1"


def heldout_positives(phrase, n, seed, split="heldout", degrade=True, bank_size="full"):
    """[(pcm int16, end sample)] of `n` held-out positives as measured. bank_size "quick"
    (a smaller noise bank, same recipes) is for short test runs."""
    import numpy as np

    from host_tools.wake import data

    clips = data.positive_set(phrase, split, n, seed=seed, progress=False)
    bank = data.make_noise_bank(split, seed=seed, size=bank_size, progress=False) if degrade else None
    rng = np.random.default_rng([seed, 4242])
    out = []
    for c in clips:
        pcm = np.asarray(c.pcm, np.int16)
        pcm = np.concatenate([pcm, pcm[:RATE // 2]])
        if degrade:
            pcm = data.augment(pcm, rng, bank, end=c.end, snr_db=float(rng.uniform(5, 20)))
        out.append((pcm, int(c.end)))
    return out


class Curve:
    """FRR and FA/h of one system over a sweep of cutoffs (arrays of equal length)."""

    def __init__(self, name, cutoffs, frr, fa, hours, n_pos):
        self.name, self.cutoffs, self.frr, self.fa, self.hours, self.n_pos = name, cutoffs, frr, fa, hours, n_pos

    def fa_per_hour(self, i):
        return self.fa[i] / self.hours

    def point(self, cutoff):
        i = self.cutoffs.index(cutoff)
        return {"cutoff": cutoff, "frr": self.frr[i], "fa_per_hour": round(self.fa_per_hour(i), 3),
                "false_accepts": self.fa[i]}


def greedy_events(pos, values, cutoff, refractory):
    # The board's decision rule (reference.greedy_events), for our tracks and microWakeWord's.
    return _ref().greedy_events(pos, values, cutoff, refractory)


# --- our detector ------------------------------------------------------------------------


def _ref():
    from host_tools.wake import reference

    return reference


def decision_track(model, feats):
    """(eval frames, mean-of-N_AVG score there) of the quantised model over one recording,
    from reference.scores; equal to reference.detect's decisions (checked in the tests)."""
    import numpy as np

    ref = _ref()
    s = np.asarray(ref.scores(model, feats), np.int64)
    every, n_avg = _const("EVAL_EVERY", 2), _const("N_AVG", 2)
    frames = np.arange(every - 1, len(s), every)
    ev = s[frames]
    if len(ev) == 0:
        return frames, np.zeros(0)
    avg = np.convolve(ev, np.ones(n_avg, np.int64))[:len(ev)]  # missing early scores count 0
    return frames, avg / n_avg


def _const(name, default):
    return getattr(_ref(), name, default)


def our_detections(model, feats, cutoff):
    frames, avg = decision_track(model, feats)
    return greedy_events(frames, avg, cutoff, _const("REFRACTORY", 50))


def curve_ours(model, pos_feats, pos_end_frames, stream_feats, stream_hours, cutoffs=range(1, 256), name="earshot"):
    tracks = [decision_track(model, f) for f in pos_feats]
    return sweep_tracks(tracks, pos_end_frames, decision_track(model, stream_feats), stream_hours, cutoffs, name)


def sweep_tracks(tracks, pos_end_frames, stream_track, stream_hours, cutoffs=range(1, 256), name="earshot"):
    # curve_ours from decision tracks already computed (positives' and the stream's).
    refr = _const("REFRACTORY", 50)
    lo, hi = int(round(BEFORE_S * RATE / HOP)), int(round(AFTER_S * RATE / HOP))
    st_frames, st_avg = stream_track
    c = _sweep(name, list(cutoffs), tracks, pos_end_frames, lo, hi, refr, st_frames, st_avg, stream_hours)
    c.stream_events = lambda cutoff: [(f + 1) * HOP for f in greedy_events(st_frames, st_avg, cutoff, refr)]
    return c


def _sweep(name, cutoffs, tracks, ends, lo, hi, refr, st_pos, st_val, hours):
    # cutoffs ascending; FA counted from the top down, stopping once it passes the cap.
    frr, fa = [None] * len(cutoffs), [None] * len(cutoffs)
    cap = MAX_FA_PER_HOUR * hours
    for j in range(len(cutoffs) - 1, -1, -1):
        c = cutoffs[j]
        n = len(greedy_events(st_pos, st_val, c, refr)) if (j == len(cutoffs) - 1 or fa[j + 1] <= cap) else math.inf
        fa[j] = n
        missed = 0
        for (pos, val), e in zip(tracks, ends):
            if not any(e - lo <= p <= e + hi for p in greedy_events(pos, val, c, refr)):
                missed += 1
        frr[j] = missed / max(1, len(tracks))
    return Curve(name, cutoffs, frr, fa, hours, len(tracks))


def loosest_within(curve, target):
    """Index of the lowest cutoff (most sensitive) from which every stricter one also keeps
    the stream within `target` false accepts per hour."""
    i = len(curve.cutoffs) - 1
    while i > 0 and curve.fa[i - 1] / curve.hours <= target:
        i -= 1
    return i


def pick_sensitivities(curve):
    """Cutoffs for low / default / high: the lowest cutoff (most sensitive) whose FA/h on
    the measured stream stays within each target; default may go lower in FA/h when that
    costs no recall."""
    out = {level: loosest_within(curve, target) for level, target in FA_TARGETS.items()}
    # default: move up (fewer false accepts) while FRR does not get worse
    i = out["default"]
    while i + 1 < len(curve.cutoffs) and curve.frr[i + 1] <= curve.frr[out["default"]] and i + 1 <= out["low"]:
        i += 1
    out["default"] = i
    res = {}
    for level, i in out.items():
        res[level] = {"cutoff": int(curve.cutoffs[i]), "fa_per_hour": round(curve.fa[i] / curve.hours, 3),
                      "frr": round(curve.frr[i], 4)}
    return res


# --- microWakeWord ---------------------------------------------------------------------------


def mww_model_for(phrase):
    key = " ".join(phrase.lower().replace(",", " ").split())
    return MWW_MODELS.get(key)


def mww_track(mww, features_cls, pcm):
    """(sample position, mean probability) of microWakeWord over one recording, fresh state."""
    import numpy as np

    mww.reset()
    fe = features_cls()
    pos, val = [], []
    k = 0
    for feat in fe.process_streaming(np.asarray(pcm, "<i2").tobytes()):
        k += 1
        p = mww.process_streaming_prob(feat)
        if k % mww.stride == 0:  # the calls that ran the model
            pos.append(k * 160)
            val.append(p if p is not None else 0.0)
    return np.array(pos, np.int64), np.array(val, np.float64)


def curve_mww(phrase, pos_pcm, pos_end_samples, stream_pcm, stream_hours, cutoffs=MWW_CUTOFFS):
    try:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
    except ImportError:
        return None
    name = mww_model_for(phrase)
    if name is None:
        return None
    mww = MicroWakeWord.from_builtin(getattr(Model, name))
    tracks = [mww_track(mww, MicroWakeWordFeatures, p) for p in pos_pcm]
    st = mww_track(mww, MicroWakeWordFeatures, stream_pcm)
    mww.close()
    # mWW fires when the mean probability exceeds the cutoff (strictly)
    eps = 1e-9
    cut = [c + eps for c in cutoffs]
    refr = int(MWW_REFRACTORY_S * RATE)
    c = _sweep("microWakeWord " + name.lower() + " v2", cut, tracks, list(pos_end_samples), int(BEFORE_S * RATE),
               int(AFTER_S * RATE), refr, st[0], st[1], stream_hours)
    c.cutoffs = list(cutoffs)
    c.stream_events = lambda cutoff: greedy_events(st[0], st[1], cutoff + eps, refr)
    return c


def near_miss_hits(events, segments, slack=RATE):
    # How many stream detections (sample positions) fall on a near miss of the phrase
    # (an "adversarial:" segment, from its start to 1 s after its end).
    spans = [(a, b + slack) for a, b, source, _ in segments if source.startswith("adversarial:")]
    return sum(1 for e in events if any(a <= e <= b for a, b in spans))


# --- outputs -----------------------------------------------------------------------------------


def draw_det(curves, points, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    floor = 0.5 / max(c.hours for c in curves if c)  # where zero false accepts are drawn
    for c, style in zip(curves, ("-", "--")):
        if c is None:
            continue
        xs = [max(c.fa[i] / c.hours, floor) for i in range(len(c.cutoffs)) if c.fa[i] != math.inf]
        ys = [100 * c.frr[i] for i in range(len(c.cutoffs)) if c.fa[i] != math.inf]
        ax.plot(xs, ys, style, marker=".", label=c.name)
    for level, p in points.items():
        x = max(p["fa_per_hour"], floor)
        ax.plot([x], [100 * p["frr"]], "o", ms=9, mfc="none", mew=2)
        ax.annotate(f"{level} ({p['cutoff']})", (x, 100 * p["frr"]), textcoords="offset points", xytext=(6, 6))
    ax.set_xscale("log")
    ax.set_xlabel(f"false accepts per hour (0 plotted at {floor:.2g})")
    ax.set_ylabel("false rejects (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.axhline(5, color="grey", lw=0.8, ls=":")
    ax.legend()
    fig.tight_layout()
    _atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def markdown(ours, mww, points, meta, segments=()):
    lines = [f"Held-out set: {ours.n_pos} positive clips, {ours.hours:.2f} h of negative stream "
             f"(voices, texts and noises not used in training). A positive counts if a detection "
             f"fires within {BEFORE_S} s before to {AFTER_S} s after the phrase end. FRR: positives "
             f"degraded with held-out noise (5-20 dB SNR), reverberation and gain, as in real rooms; "
             f"FRR clean: the same clips undegraded; FRR natural: the degraded clips spoken by the "
             f"neural (Piper) voice, the nearest to a human here (the rest are espeak-ng voices). "
             f"Near-miss FAs: false accepts on held-out near misses of the phrase (\"pay jarvis\", "
             f"\"hey jars\"), which are about a tenth of the stream.", "",
             "| system | setting | cutoff | FRR | FRR clean | FRR natural | FA/h | false accepts | near-miss FAs |",
             "|---|---|---|---|---|---|---|---|---|"]

    def row(c, setting, cutoff, i):
        hits = near_miss_hits(c.stream_events(c.cutoffs[i]), segments) if c.fa[i] != math.inf else "-"
        lines.append(f"| {c.name} | {setting} | {cutoff} | {100 * c.frr[i]:.1f} % | {_clean(c, i)} | "
                     f"{_pct(c, 'frr_natural', i)} | {_fa_str(c, i)} | {c.fa[i]} | {hits} |")

    for level, p in points.items():
        row(ours, level, p["cutoff"], ours.cutoffs.index(p["cutoff"]))
    if mww is not None:
        for i, c in enumerate(mww.cutoffs):
            if c in (0.5, 0.9, 0.97, 0.99):
                row(mww, "default" if c == 0.97 else "sweep", c, i)
    head = ["| cutoff | FRR | FRR natural | FA/h |", "|---|---|---|---|"]
    lines += ["", "Sweep (ours):", ""] + head
    for i, c in enumerate(ours.cutoffs):
        if c % 16 == 0 or c in [p["cutoff"] for p in points.values()] or c == 255:
            lines.append(f"| {c} | {100 * ours.frr[i]:.1f} % | {_pct(ours, 'frr_natural', i)} | {_fa_str(ours, i)} |")
    if mww is not None:
        lines += ["", "Sweep (microWakeWord):", ""] + head
        for i, c in enumerate(mww.cutoffs):
            lines.append(f"| {c} | {100 * mww.frr[i]:.1f} % | {_pct(mww, 'frr_natural', i)} | {_fa_str(mww, i)} |")
    return "\n".join(lines) + "\n"


def _clean(c, i):
    return _pct(c, "frr_clean", i)


def _pct(c, attr, i):
    frr = getattr(c, attr, None)
    return "-" if frr is None else f"{100 * frr[i]:.1f} %"


def _fa_str(c, i):
    return f"> {MAX_FA_PER_HOUR:.0f}" if c.fa[i] == math.inf else f"{c.fa[i] / c.hours:.2f}"


def _atomic(path, write):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # a report, not a recording: readable like any file the user writes
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path, text):
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


# --- `earshot wake eval` ----------------------------------------------------------------------


def run_eval(model_path, meta, model, out, hours, n_pos, seed=0, reference=True, log=None):
    """Measures the model (and microWakeWord) on held-out audio; writes det.png, eval.md
    and eval.json into `out`; prints the table. Returns the results dict."""
    from host_tools.wake.train import one_blas_thread

    with one_blas_thread():
        return _run_eval(model_path, meta, model, out, hours, n_pos, seed, reference, log)


def _run_eval(model_path, meta, tensors, out, hours, n_pos, seed, reference, log):
    model = (meta, tensors)
    import numpy as np

    from host_tools.wake import data

    log = log or _log
    phrase = meta.get("phrase", "?")
    t0 = time.monotonic()
    clips = heldout_positives(phrase, n_pos, seed, bank_size=bank_size(hours))
    natural = [c.source.startswith("piper:") for c in data.positive_set(phrase, "heldout", n_pos, seed=seed,
                                                                         progress=False)]
    stream, segments = data.negative_stream("heldout", hours, seed=seed, progress=False, with_segments=True)
    stream = np.asarray(stream, np.int16)
    real_hours = len(stream) / RATE / 3600
    log(f"held-out audio: {len(clips)} positives, {real_hours:.2f} h of negative stream ({time.monotonic() - t0:.0f} s)")
    ref = _ref()
    t0 = time.monotonic()
    pos_feats = [np.asarray(ref.features(pcm), np.uint8) for pcm, _ in clips]
    from host_tools.wake.train import end_frame

    ends = [end_frame(end) for _, end in clips]
    ours = curve_ours(model, pos_feats, ends, np.asarray(ref.features(stream), np.uint8), real_hours)
    none = np.zeros((0, 32), np.uint8)
    if any(natural):
        ours.frr_natural = curve_ours(model, [f for f, n in zip(pos_feats, natural) if n],
                                      [e for e, n in zip(ends, natural) if n], none, 1.0).frr
    log(f"measured {model_path} ({time.monotonic() - t0:.0f} s)")
    points = {}
    for level, s in (meta.get("sensitivities") or {}).items():
        c = int(s["cutoff"])
        if c in ours.cutoffs:
            points[level] = ours.point(c)
    # the same positives undegraded: FRR only (the stream is the same)
    clean = heldout_positives(phrase, n_pos, seed, degrade=False)
    ours.frr_clean = curve_ours(model, [np.asarray(ref.features(pcm), np.uint8) for pcm, _ in clean],
                                ends, none, 1.0).frr
    mww = None
    if reference:
        t0 = time.monotonic()
        mww = curve_mww(phrase, [pcm for pcm, _ in clips], [end for _, end in clips], stream, real_hours)
        if mww is None:
            log(f"no microWakeWord model for {phrase!r} (or pymicro-wakeword is missing): ours only")
        else:
            mww.frr_clean = curve_mww(phrase, [pcm for pcm, _ in clean], [end for _, end in clean],
                                      np.zeros(0, np.int16), 1.0).frr
            if any(natural):
                mww.frr_natural = curve_mww(phrase, [p for (p, _), n in zip(clips, natural) if n],
                                            [e for (_, e), n in zip(clips, natural) if n],
                                            np.zeros(0, np.int16), 1.0).frr
            log(f"measured {mww.name} ({time.monotonic() - t0:.0f} s)")
    checked = None
    if mww is not None:
        t0 = time.monotonic()
        checked = receiver_check(phrase, model, ours, points, clips, pos_feats, ends, natural, stream, real_hours)
        log(f"measured the receiver's check on the board's wakes ({time.monotonic() - t0:.0f} s)")
    table = markdown(ours, mww, points, meta, segments) + check_markdown(checked)
    draw_det([ours, mww], points, out / "det.png",
             f"{phrase!r}: {ours.n_pos} held-out positives, {real_hours:.2f} h negatives")
    write_text(out / "eval.md", table)
    results = {"model": str(model_path), "phrase": phrase, "positives": ours.n_pos, "hours": round(real_hours, 3),
               "points": points, "ours": _curve_json(ours), "microwakeword": _curve_json(mww) if mww else None,
               "receiver_check": checked}
    for key, c in (("ours", ours), ("microwakeword", mww)):
        for attr in ("frr_clean", "frr_natural"):
            if c is not None and getattr(c, attr, None) is not None:
                results[key][attr] = [round(x, 4) for x in getattr(c, attr)]
    write_text(out / "eval.json", json.dumps(results, indent=1) + "\n")
    print(table)
    log(f"wrote {out / 'det.png'}, {out / 'eval.md'}, {out / 'eval.json'}")
    return results


# --- `earshot wake eval --cross`: which side limits a model -----------------------------------

CROSS_TRAIN_SEED = 1000  # + the model's training seed: training-split draws it never trained on


def run_cross(model_path, meta, tensors, out, hours, n_pos, seed=0, log=None):
    """Positives and negative stream from the training split and the held-out split,
    crossed: FRR at the default and high FA/h targets for the four pairs. The training
    split's audio is a fresh draw (seed CROSS_TRAIN_SEED + the model's training seed), so
    its voices, texts and noise recipes are the training's but not its clips. Writes
    cross.md into `out`, prints it, returns the rows."""
    from host_tools.wake.train import one_blas_thread

    with one_blas_thread():
        return _run_cross(model_path, meta, tensors, out, hours, n_pos, seed, log)


def _run_cross(model_path, meta, tensors, out, hours, n_pos, seed, log):
    import numpy as np

    from host_tools.wake import data
    from host_tools.wake.train import end_frame

    log = log or _log
    model = (meta, tensors)
    phrase = meta.get("phrase", "?")
    ref = _ref()

    def track(pcm):
        return decision_track(model, np.asarray(ref.features(pcm), np.uint8))

    trained_seed = int((meta.get("trained") or {}).get("seed", 0))
    draws = {"training": ("train", CROSS_TRAIN_SEED + trained_seed), "held-out": ("heldout", seed)}
    pos, stream = {}, {}
    for name, (split, s) in draws.items():
        t0 = time.monotonic()
        clips = heldout_positives(phrase, n_pos, s, split=split, bank_size=bank_size(hours))
        pos[name] = [track(pcm) for pcm, _ in clips], [end_frame(end) for _, end in clips]
        pcm = np.asarray(data.negative_stream(split, hours, seed=s, progress=False), np.int16)
        stream[name] = track(pcm), len(pcm) / RATE / 3600
        log(f"{name} audio (split {split}, seed {s}): {len(clips)} positives, {stream[name][1]:.2f} h of stream "
            f"({time.monotonic() - t0:.0f} s)")
    targets = (FA_TARGETS["default"], FA_TARGETS["high"])
    rows = []
    for p_name, s_name in (("held-out", "held-out"), ("training", "held-out"), ("held-out", "training"),
                           ("training", "training")):
        curve = sweep_tracks(*pos[p_name], *stream[s_name])
        rows.append({"positives": p_name, "stream": s_name,
                     "frr": {str(t): round(curve.frr[loosest_within(curve, t)], 4) for t in targets}})
    lines = [f"Which side limits {model_path.name}: {n_pos} positives and {hours:.2f} h of negative stream "
             "from each split, crossed (training split: voices, texts and noises of training, not its clips).",
             "", "| positives | negative stream | " + " | ".join(f"FRR at {t} FA/h" for t in targets) + " |",
             "|---|---|" + "---|" * len(targets)]
    for r in rows:
        lines.append(f"| {r['positives']} | {r['stream']} | "
                     + " | ".join(f"{100 * r['frr'][str(t)]:.1f} %" for t in targets) + " |")
    table = "\n".join(lines) + "\n"
    write_text(out / "cross.md", table)
    print(table)
    log(f"wrote {out / 'cross.md'}")
    return rows


CHECK_SWEEP_FA_PER_HOUR = (5.0, 40.0)  # more board settings, looser than shipped, to have false wakes to count


def receiver_check(phrase, model, ours, points, clips, pos_feats, ends, natural, stream, hours):
    """What the receiver's microWakeWord check (verify.py) does to the board's wakes: the
    false ones on the negative stream and the true ones on the positives, at the shipped
    sensitivities and at looser cutoffs (the shipped ones wake falsely too rarely to count)."""
    from host_tools import verify

    settings = [(level, p["cutoff"]) for level, p in points.items()]
    for target in CHECK_SWEEP_FA_PER_HOUR:
        i = next((i for i in range(len(ours.cutoffs)) if ours.fa[i] / ours.hours <= target), None)
        if i is not None and ours.cutoffs[i] not in [c for _, c in settings]:
            settings.append((f"sweep ~{target:g} FA/h", ours.cutoffs[i]))
    lo, hi = int(round(BEFORE_S * RATE / HOP)), int(round(AFTER_S * RATE / HOP))
    rows = []
    for setting, cutoff in settings:
        false_kept = verify.verdicts(phrase, stream, ours.stream_events(cutoff))
        kept, is_natural = [], []  # per true wake: the verdict, and whether the voice is natural
        for (pcm, _), f, e, nat in zip(clips, pos_feats, ends, natural):
            hit = next((d for d in our_detections(model, f, cutoff) if e - lo <= d <= e + hi), None)
            if hit is not None:
                kept += verify.verdicts(phrase, pcm, [(hit + 1) * HOP])
                is_natural.append(nat)
        rows.append({"setting": setting, "board_cutoff": cutoff, "hours": round(hours, 3),
                     "false_wakes": len(false_kept), "false_wakes_kept": sum(false_kept),
                     "true_wakes": len(kept), "true_wakes_kept": sum(kept), "verify_cutoff": verify.DEFAULT_CUTOFF,
                     "natural_true_wakes": sum(is_natural),
                     "natural_true_wakes_kept": sum(k for k, nat in zip(kept, is_natural) if nat)})
    return rows


def check_markdown(rows):
    if not rows:
        return ""
    lines = ["", f"The receiver's check (microWakeWord on the pre-roll, mean probability > "
                 f"{rows[0]['verify_cutoff']}): of the board's wakes, how many it keeps.", "",
             "| board setting | board cutoff | false wakes (per h) | false wakes kept | true wakes | true wakes kept "
             "| of them natural voice: kept |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['board_cutoff']} | {r['false_wakes']} ({r['false_wakes'] / r['hours']:.1f}) "
                     f"| {r['false_wakes_kept']} | {r['true_wakes']} | {r['true_wakes_kept']} "
                     f"| {r['natural_true_wakes']}: {r['natural_true_wakes_kept']} |")
    return "\n".join(lines) + "\n"


def _log(msg):
    print(f"wake eval: {msg}", file=sys.stderr, flush=True)


def bank_size(hours):
    # Short test runs use data.py's quick noise bank (as its negative_stream does below 0.25 h).
    return "full" if hours >= 0.25 else "quick"


def _curve_json(c):
    return {"name": c.name, "cutoffs": list(c.cutoffs), "frr": [round(x, 4) for x in c.frr],
            "fa_per_hour": [None if x == math.inf else round(x / c.hours, 3) for x in c.fa]}
