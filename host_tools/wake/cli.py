# `earshot wake train | detect | eval`: train the wake-word detector, run the firmware's
# detector over recordings, and measure it against microWakeWord on held-out audio.
# Heavy imports (numpy, matplotlib, the trainer) happen inside the handlers.
import json
import sys
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.paths import FIRMWARE

DEFAULT_PHRASE = "hey jarvis"
SENSITIVITIES = ("low", "default", "high")


def default_model_path(phrase=DEFAULT_PHRASE):
    # The shipped model for hey jarvis is firmware/hey_jarvis.eww; other phrases go next to it.
    stem = "_".join("".join(ch if ch.isalnum() else " " for ch in phrase.lower()).split()) or "wake"
    return FIRMWARE / f"{stem}.eww"


def add_arguments(parser):
    sub = parser.add_subparsers(dest="wake_command", metavar="ACTION", required=True)

    p = sub.add_parser("train", help="train a detector for a phrase and write its model file",
                       description="Build the synthetic corpus, train, quantise, and set the three "
                                   "sensitivity cutoffs on held-out audio.")
    p.add_argument("--phrase", default=DEFAULT_PHRASE, help="wake phrase (default %(default)r)")
    p.add_argument("--quick", action="store_true", help="small corpus and few epochs (under a minute; for tests)")
    p.add_argument("--out", metavar="PATH", help="model file to write (default firmware/<phrase>.eww)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    p.set_defaults(wake_handler=_train)

    p = sub.add_parser("detect", help="run the firmware's detector over WAV files",
                       description="Runs the firmware detector (under MicroPython) and prints one JSON "
                                   "line per detection: {\"file\", \"t\" (s from file start), \"score\"}.")
    p.add_argument("files", nargs="+", metavar="FILE", help="WAV recordings (converted to 16 kHz mono)")
    p.add_argument("--model", metavar="M", help="model file (default firmware/hey_jarvis.eww)")
    p.add_argument("--sensitivity", choices=SENSITIVITIES, default="default",
                   help="which of the model's cutoffs to use (default %(default)s)")
    p.set_defaults(wake_handler=_detect)

    p = sub.add_parser("eval", help="measure FRR and FA/h on the held-out set, against microWakeWord",
                       description="Held-out positives and negative stream; writes a DET curve PNG and "
                                   "a markdown table into --out.")
    p.add_argument("--model", metavar="M", help="model file (default firmware/hey_jarvis.eww)")
    p.add_argument("--out", metavar="DIR", default="out/wake-eval", help="output folder (default %(default)s)")
    p.add_argument("--hours", type=float, default=2.0, help="hours of held-out negative stream (default %(default)s)")
    p.add_argument("--positives", type=int, default=300, help="held-out positive clips (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out audio (default %(default)s)")
    p.add_argument("--no-reference", action="store_true", help="skip microWakeWord")
    p.add_argument("--cross", action="store_true",
                   help="instead: cross training-split and held-out positives and negatives, to see "
                        "whether unheard voices or unheard negative audio limit the model (writes cross.md)")
    p.set_defaults(wake_handler=_eval)


def run(args):
    return args.wake_handler(args)


def _train(args):
    from host_tools.wake import train

    out = Path(args.out) if args.out else default_model_path(args.phrase)
    train.train_to_file(args.phrase, out, quick=args.quick, seed=args.seed)
    return 0


def _load_model(path):
    from host_tools.wake import modelfile

    path = Path(path) if path else default_model_path()
    if not path.exists():
        raise CommandError(f"{path}: no such model file; train one with `earshot wake train --phrase ...`")
    try:
        meta, tensors = modelfile.load(path)
    except CommandError:
        raise
    except Exception as e:  # any malformed file: one line, not a traceback
        raise CommandError(f"{path}: not a valid earshot wake model ({type(e).__name__}: {e}); retrain it")
    return path, meta, tensors


def _cutoff(meta, path, sensitivity):
    try:
        return int(meta["sensitivities"][sensitivity]["cutoff"])
    except (KeyError, TypeError, ValueError):
        raise CommandError(f"{path}: the model has no {sensitivity!r} sensitivity; retrain it")


def _detect(args):
    from host_tools.audio import load_wav

    path, meta, _ = _load_model(args.model)
    cutoff = _cutoff(meta, path, args.sensitivity)
    audio = []
    for f in args.files:  # every file is read (and any error raised) before anything runs
        pcm, notes = load_wav(f)
        for note in notes:
            print(f"earshot: {f}: {note}", file=sys.stderr)
        audio.append((f, pcm))
    from host_tools.wake import detect_runner

    def echo(hit):
        print(json.dumps({"file": str(hit["file"]), "t": round(float(hit["t"]), 3),
                          "score": float(hit["score"])}), flush=True)

    detect_runner.run_firmware_detector(str(path), audio, cutoff, echo=echo)
    return 0


def _eval(args):
    from host_tools.wake import evaluate

    path, meta, tensors = _load_model(args.model)
    if args.hours <= 0 or args.positives <= 0:
        raise CommandError("--hours and --positives must be positive")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CommandError(f"{out}: cannot create the output folder ({e.strerror})")
    if args.cross:
        evaluate.run_cross(path, meta, tensors, out, hours=args.hours, n_pos=args.positives, seed=args.seed)
    else:
        evaluate.run_eval(path, meta, tensors, out, hours=args.hours, n_pos=args.positives, seed=args.seed,
                          reference=not args.no_reference)
    return 0
