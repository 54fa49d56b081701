# `earshot wake eval`: the board's port of microWakeWord (the firmware's frontend and
# int8 runtime, run under MicroPython by detect_runner.py) beside pymicro-wakeword (the
# same model in TFLite's optimized kernels), on the same held-out audio.
#
# Both give one uint8 output per 30 ms invocation; the board's decision (decision.py:
# mean of the last `window` outputs above the cutoff, then a 1 s rest) is applied to both,
# so any difference comes from the outputs alone. A positive clip counts as detected if a
# detection fires within [phrase end - 0.5 s, phrase end + 1.0 s]; FRR is the share of
# positive clips without one. A false accept is any detection on the negative stream;
# FA/h divides by the stream's length. Each positive clip runs from a fresh state; the
# stream runs as one long recording.
import json
import sys
import time
from pathlib import Path

import numpy as np

from host_tools.atomic import write_atomically
from host_tools.wake import decision

RATE = 16000
BEFORE_S, AFTER_S = 0.5, 1.0  # a positive is detected within [end - 0.5 s, end + 1.0 s]
MATCH_S = 0.5  # two systems' false accepts within this of each other are the same one
# uint8 cutoffs swept (probability x 255), from 0.5 to 0.996
CUTOFFS = (128, 153, 179, 191, 204, 217, 223, 229, 235, 240, 242, 245, 247, 249, 250, 251, 252, 253, 254)
HIGH_FA_PER_HOUR = 2.0  # high may make this many false accepts per hour where the default makes none

# How held-out positives are presented: each clip of data.positive_set is degraded with
# augment() using the held-out noise bank (noise at 5-20 dB SNR with p 0.8, reverberation
# p 0.5, far-field colouring p 0.5, speed p 0.5, gain -20..+6 dB), then 0.5 s of its own
# lead-in is appended, so that every clip runs to at least 1.0 s after the phrase end.
POSITIVE_PROTOCOL = "augment-heldout-snr5-20+lead-tail-v1"


def heldout_positives(phrase, n, seed, degrade=True, bank_size="full"):
    """[(pcm int16, end sample, natural voice?)] of `n` held-out positives as measured.
    bank_size "quick" (a smaller noise bank, same recipes) is for short test runs."""
    from host_tools.wake import data

    clips = data.positive_set(phrase, "heldout", n, seed=seed, progress=False)
    bank = data.make_noise_bank("heldout", seed=seed, size=bank_size, progress=False) if degrade else None
    rng = np.random.default_rng([seed, 4242])
    out = []
    for c in clips:
        pcm = np.asarray(c.pcm, np.int16)
        pcm = np.concatenate([pcm, pcm[:RATE // 2]])
        if degrade:
            pcm = data.augment(pcm, rng, bank, end=c.end, snr_db=float(rng.uniform(5, 20)))
        out.append((pcm, int(c.end), c.source.startswith("piper:")))
    return out


# --- the two systems' outputs ----------------------------------------------------------------


def board_outputs(model_file, pcms):
    from host_tools.wake.detect_runner import firmware_outputs

    return firmware_outputs(model_file, [(k, p) for k, p in enumerate(pcms)])


def mww_outputs(source, pcms):
    """pymicro-wakeword's uint8 output at every invocation, per recording (fresh state
    each). source: a bundled name or a v2 manifest path."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    from host_tools.wake import models

    if models.for_phrase(source) == str(source):
        mww = MicroWakeWord.from_builtin(Model(str(source)))
    else:
        mww = MicroWakeWord.from_config(str(source))
    out = []
    try:
        for pcm in pcms:
            mww.reset()
            feats = MicroWakeWordFeatures()
            track = []
            for k, f in enumerate(feats.process_streaming(np.asarray(pcm, "<i2").tobytes())):
                mww.process_streaming_prob(f)
                if k % mww.stride == mww.stride - 1:  # this call ran the model
                    track.append(round(mww._probabilities[-1] / mww.output_scale) + mww.output_zero_point)
            out.append(np.array(track, np.uint8))
    finally:
        mww.close()
    return out


# --- sweeps ------------------------------------------------------------------------------------


class Curve:
    """FRR and false accepts of one system over the cutoffs, with what each detected."""

    def __init__(self, name, cutoffs, hours, n_pos):
        self.name, self.cutoffs, self.hours, self.n_pos = name, list(cutoffs), hours, n_pos
        self.frr, self.fa, self.frr_natural = [], [], []
        self.hits = []  # per cutoff: per positive, the detection time (s) or None
        self.false = []  # per cutoff: the false accepts' times (s) in the stream

    def at(self, cutoff):
        return self.cutoffs.index(cutoff)

    def fa_per_hour(self, i):
        return self.fa[i] / self.hours

    def point(self, cutoff):
        i = self.at(cutoff)
        return {"cutoff": cutoff, "frr": round(self.frr[i], 4), "frr_natural": _r(self.frr_natural[i]),
                "fa_per_hour": round(self.fa_per_hour(i), 3), "false_accepts": self.fa[i]}


def _r(x):
    return None if x is None else round(x, 4)


def sweep(name, pos_tracks, ends_s, natural, stream_track, hours, window, cutoffs=CUTOFFS):
    c = Curve(name, cutoffs, hours, len(pos_tracks))
    for cutoff in cutoffs:
        hits = []
        for track, end in zip(pos_tracks, ends_s):
            times = [decision.slice_end_s(j) for j in decision.detections(track, cutoff, window)]
            hits.append(next((t for t in times if end - BEFORE_S <= t <= end + AFTER_S), None))
        false = [decision.slice_end_s(j) for j in decision.detections(stream_track, cutoff, window)]
        c.hits.append(hits)
        c.false.append(false)
        c.frr.append(sum(h is None for h in hits) / max(1, len(hits)))
        nat = [h for h, n in zip(hits, natural) if n]
        c.frr_natural.append(sum(h is None for h in nat) / len(nat) if nat else None)
        c.fa.append(len(false))
    return c


def differences(a, b, cutoff):
    """How the two systems' detections differ at one cutoff."""
    i, j = a.at(cutoff), b.at(cutoff)
    only_a = sum(x is not None and y is None for x, y in zip(a.hits[i], b.hits[j]))
    only_b = sum(x is None and y is not None for x, y in zip(a.hits[i], b.hits[j]))

    def unmatched(xs, ys):
        return sum(1 for x in xs if not any(abs(x - y) <= MATCH_S for y in ys))

    return {"cutoff": cutoff, "positives_only_" + a.key: only_a, "positives_only_" + b.key: only_b,
            "false_accepts_only_" + a.key: unmatched(a.false[i], b.false[j]),
            "false_accepts_only_" + b.key: unmatched(b.false[j], a.false[i])}


def output_agreement(xs, ys):
    """How many invocations give the same output, recording by recording (the board's
    runner drops a last part-frame of a recording, so a track may be one output shorter)."""
    n = equal = top = 0
    for x, y in zip(xs, ys):
        k = min(len(x), len(y))
        d = np.abs(x[:k].astype(int) - y[:k].astype(int))
        n, equal, top = n + k, equal + int(np.sum(d == 0)), max(top, int(d.max()) if k else 0)
    return {"invocations": n, "equal": equal, "max_diff": top}


def pick_sensitivities(curve, default):
    """low / default / high for the board from its measured curve, by false accepts on
    the held-out stream: default is the model's own cutoff; high the loosest cutoff with
    at most twice its false accepts (at most HIGH_FA_PER_HOUR where it makes none); low
    the loosest cutoff above it with at most half of them, or, where the default makes
    none (nothing left to measure), the cutoff halfway from the default to 255."""
    d = curve.at(default)
    allowed = max(2 * curve.fa[d], HIGH_FA_PER_HOUR * curve.hours)
    high = next((i for i in range(d + 1) if curve.fa[i] <= allowed), d)
    if curve.fa[d]:
        low = next((i for i in range(d + 1, len(curve.cutoffs)) if 2 * curve.fa[i] <= curve.fa[d]),
                   len(curve.cutoffs) - 1)
    else:
        low = next(i for i in range(d, len(curve.cutoffs)) if curve.cutoffs[i] >= (default + 256) // 2)
    return {level: curve.point(curve.cutoffs[i]) for level, i in (("low", low), ("default", d), ("high", high))}


# --- the receiver's check (P6) on the board's wakes -----------------------------------------


def receiver_check(phrase, board, points, clips, stream, hours):
    """What verify.py does to the board's wakes: the false ones on the stream and the true
    ones on the positives, at the board's sensitivities and at looser cutoffs (with the
    shipped ones the board wakes falsely too rarely to count)."""
    from host_tools import verify

    settings = [(level, p["cutoff"]) for level, p in points.items()]
    for cutoff in (128, 191):
        if cutoff not in [c for _, c in settings]:
            settings.append((f"sweep {cutoff}", cutoff))
    rows = []
    for setting, cutoff in settings:
        i = board.at(cutoff)
        false_kept = verify.verdicts(phrase, stream, [int(t * RATE) for t in board.false[i]])
        kept, nat = [], []
        for (pcm, _, natural), t in zip(clips, board.hits[i]):
            if t is not None:
                kept += verify.verdicts(phrase, pcm, [int(t * RATE)])
                nat.append(natural)
        rows.append({"setting": setting, "board_cutoff": cutoff, "hours": round(hours, 3),
                     "false_wakes": len(false_kept), "false_wakes_kept": sum(false_kept),
                     "true_wakes": len(kept), "true_wakes_kept": sum(kept), "verify_cutoff": verify.DEFAULT_CUTOFF,
                     "natural_true_wakes": sum(nat), "natural_true_wakes_kept": sum(k for k, n in zip(kept, nat) if n)})
    return rows


# --- outputs -----------------------------------------------------------------------------------


def draw_det(curves, points, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    floor = 0.5 / max(c.hours for c in curves)  # where zero false accepts are drawn
    for c, style in zip(curves, ("-", "--")):
        xs = [max(c.fa_per_hour(i), floor) for i in range(len(c.cutoffs))]
        ax.plot(xs, [100 * f for f in c.frr], style, marker=".", color="tab:blue", label=f"{c.name}: all voices")
        if any(f is not None for f in c.frr_natural):
            ax.plot(xs, [None if f is None else 100 * f for f in c.frr_natural], style, marker=".",
                    color="tab:orange", label=f"{c.name}: natural voice")
    for level, p in points.items():
        x = max(p["fa_per_hour"], floor)
        ax.plot([x], [100 * p["frr"]], "o", ms=9, mfc="none", mew=2)
        ax.annotate(f"{level} ({p['cutoff']})", (x, 100 * p["frr"]), textcoords="offset points", xytext=(6, 6))
    ax.set_xscale("log")
    ax.set_xlabel(f"false accepts per hour (0 plotted at {floor:.2g})")
    ax.set_ylabel("false rejects (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def markdown(board, mww, points, diffs, agreement, checked):
    lines = [f"Held-out set: {board.n_pos} positive clips, {board.hours:.2f} h of negative stream. A positive "
             f"counts if a detection fires within {BEFORE_S} s before to {AFTER_S} s after the phrase end. "
             "Positives are degraded with held-out noise (5-20 dB SNR), reverberation and gain; FRR natural: "
             "the clips in the neural (Piper) voice (the rest are espeak-ng voices, which the model mostly "
             "does not hear). Both systems use the board's decision (mean of the last window outputs above "
             "the cutoff, then 1 s of rest).", "",
             "| system | setting | cutoff | FRR | FRR natural | FA/h | false accepts |",
             "|---|---|---|---|---|---|---|"]
    for c in (board, mww):
        if c is None:
            continue
        for level, p in points.items():
            q = c.point(p["cutoff"])
            lines.append(f"| {c.name} | {level} | {q['cutoff']} | {100 * q['frr']:.1f} % | {_pct(q['frr_natural'])} "
                         f"| {q['fa_per_hour']:.2f} | {q['false_accepts']} |")
    if mww is not None:
        lines += ["", f"Outputs: {agreement['equal']} of {agreement['invocations']} invocations give the same "
                      f"uint8 output ({100 * agreement['equal'] / max(1, agreement['invocations']):.2f} %); "
                      f"the largest difference is {agreement['max_diff']}.", "",
                  "| cutoff | positives only the board detects | only pymicro-wakeword | false accepts only the "
                  "board makes | only pymicro-wakeword |", "|---|---|---|---|---|"]
        for d in diffs:
            lines.append(f"| {d['cutoff']} | {d['positives_only_board']} | {d['positives_only_mww']} "
                         f"| {d['false_accepts_only_board']} | {d['false_accepts_only_mww']} |")
    lines += ["", "Sweep:", "", "| cutoff | board FRR | board FRR natural | board FA/h"
              + (" | pymicro-wakeword FRR | FRR natural | FA/h |" if mww else " |"),
              "|---|---|---|---|" + ("---|---|---|" if mww else "")]
    for i, cutoff in enumerate(board.cutoffs):
        row = f"| {cutoff} | {100 * board.frr[i]:.1f} % | {_pct(board.frr_natural[i])} | {board.fa_per_hour(i):.2f} |"
        if mww:
            row += f" {100 * mww.frr[i]:.1f} % | {_pct(mww.frr_natural[i])} | {mww.fa_per_hour(i):.2f} |"
        lines.append(row)
    if checked:
        lines += ["", f"The receiver's check (pymicro-wakeword on the pre-roll, mean probability > "
                      f"{checked[0]['verify_cutoff']}): of the board's wakes, how many it keeps.", "",
                  "| board setting | board cutoff | false wakes (per h) | false wakes kept | true wakes | true wakes kept "
                  "| of them natural voice: kept |", "|---|---|---|---|---|---|---|"]
        for r in checked:
            lines.append(f"| {r['setting']} | {r['board_cutoff']} | {r['false_wakes']} "
                         f"({r['false_wakes'] / r['hours']:.1f}) | {r['false_wakes_kept']} | {r['true_wakes']} "
                         f"| {r['true_wakes_kept']} | {r['natural_true_wakes']}: {r['natural_true_wakes_kept']} |")
    return "\n".join(lines) + "\n"


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f} %"


def write_text(path, text):
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def _log(msg):
    print(f"wake eval: {msg}", file=sys.stderr, flush=True)


def bank_size(hours):
    # Short test runs use data.py's quick noise bank (as its negative_stream does below 0.25 h).
    return "full" if hours >= 0.25 else "quick"


# --- `earshot wake eval` ----------------------------------------------------------------------


def run_eval(model_file, meta, reference, out, hours, n_pos, seed=0, log=None):
    """Measures the board's port of the model (and pymicro-wakeword's, from `reference`: a
    bundled name or a v2 manifest, or None) on held-out audio; writes det.png, eval.md and
    eval.json into `out`; prints the table. Returns the results dict."""
    from host_tools.wake import data

    log = log or _log
    phrase, window = meta["phrase"], int(meta["window"])
    t0 = time.monotonic()
    clips = heldout_positives(phrase, n_pos, seed, bank_size=bank_size(hours))
    stream = np.asarray(data.negative_stream("heldout", hours, seed=seed, progress=False, phrase=phrase), np.int16)
    real_hours = len(stream) / RATE / 3600
    log(f"held-out audio: {len(clips)} positives, {real_hours:.2f} h of negative stream ({time.monotonic() - t0:.0f} s)")
    pcms = [pcm for pcm, _, _ in clips] + [stream]
    ends = [end / RATE for _, end, _ in clips]
    natural = [n for _, _, n in clips]
    # the sweep, plus the model's own cutoffs wherever they are
    cutoffs = sorted(set(CUTOFFS) | {meta["cutoff"], (meta["cutoff"] + 256) // 2}
                     | {s["cutoff"] for s in meta["sensitivities"].values()})
    curves, outputs = {}, {}
    systems = [("board", "earshot board (MicroPython port)", lambda: board_outputs(model_file, pcms))]
    if reference is not None:
        systems.append(("mww", "pymicro-wakeword (TFLite)", lambda: mww_outputs(reference, pcms)))
    for key, name, run in systems:
        t0 = time.monotonic()
        outputs[key] = run()
        c = sweep(name, outputs[key][:-1], ends, natural, outputs[key][-1], real_hours, window, cutoffs)
        c.key = key
        curves[key] = c
        log(f"measured {name} ({time.monotonic() - t0:.0f} s)")
    board, mww = curves["board"], curves.get("mww")
    points = {level: board.point(s["cutoff"]) for level, s in meta["sensitivities"].items()}
    diffs, agreement, checked = [], None, None
    if mww is not None:
        diffs = [differences(board, mww, p["cutoff"]) for p in points.values()]
        agreement = output_agreement(outputs["board"], outputs["mww"])
        from host_tools import verify

        if verify.available(phrase):
            t0 = time.monotonic()
            checked = receiver_check(phrase, board, points, clips, stream, real_hours)
            log(f"measured the receiver's check on the board's wakes ({time.monotonic() - t0:.0f} s)")
    picks = pick_sensitivities(board, meta["cutoff"])
    table = markdown(board, mww, points, diffs, agreement, checked)
    draw_det([c for c in (board, mww) if c], points, out / "det.png",
             f"{phrase!r}: {board.n_pos} held-out positives, {real_hours:.2f} h negatives")
    write_text(out / "eval.md", table)
    results = {"model": str(model_file), "phrase": phrase, "positives": board.n_pos, "hours": round(real_hours, 3),
               "seed": seed, "protocol": POSITIVE_PROTOCOL, "points": points, "picked_sensitivities": picks,
               "differences": diffs, "outputs_agreement": agreement, "receiver_check": checked,
               "board": _curve_json(board), "pymicro_wakeword": _curve_json(mww) if mww else None}
    write_text(out / "eval.json", json.dumps(results, indent=1) + "\n")
    print(table)
    log(f"wrote {out / 'det.png'}, {out / 'eval.md'}, {out / 'eval.json'}")
    return results


def _curve_json(c):
    return {"name": c.name, "cutoffs": c.cutoffs, "frr": [round(x, 4) for x in c.frr],
            "frr_natural": [_r(x) for x in c.frr_natural],
            "fa_per_hour": [round(c.fa_per_hour(i), 3) for i in range(len(c.cutoffs))]}
