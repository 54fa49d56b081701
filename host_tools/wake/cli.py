# `earshot wake detect | eval | convert`: run the board's wake-word code over recordings,
# measure it beside pymicro-wakeword on held-out audio, and convert a microWakeWord model
# for the board. Heavy imports (numpy, matplotlib, the converter) happen inside the handlers.
import json
import sys
from pathlib import Path

from host_tools.errors import CommandError

SENSITIVITIES = ("low", "default", "high")
MODEL_HELP = ("hey_jarvis (default), okay_nabu, alexa, hey_mycroft, or a microWakeWord v2 .tflite/.json, "
              "or a converted .eww")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="wake_command", metavar="ACTION", required=True)

    p = sub.add_parser("detect", help="run the board's wake-word detector over WAV files",
                       description="Runs the firmware's detector (under MicroPython) and prints one JSON "
                                   "line per detection: {\"file\", \"t\" (s from file start), \"score\"}.")
    p.add_argument("files", nargs="+", metavar="FILE", help="WAV recordings (converted to 16 kHz mono)")
    p.add_argument("--model", metavar="M", default="hey_jarvis", help=MODEL_HELP)
    p.add_argument("--sensitivity", choices=SENSITIVITIES, default="default",
                   help="which of the model's cutoffs to use (default %(default)s)")
    p.set_defaults(wake_handler=_detect)

    p = sub.add_parser("eval", help="measure FRR and FA/h on held-out audio, beside pymicro-wakeword",
                       description="Held-out positives and negative stream through the board's port and "
                                   "pymicro-wakeword; writes a DET curve PNG, a markdown table and JSON into --out.")
    p.add_argument("--model", metavar="M", default="hey_jarvis", help=MODEL_HELP)
    p.add_argument("--out", metavar="DIR", default="out/wake-eval", help="output folder (default %(default)s)")
    p.add_argument("--hours", type=float, default=2.0, help="hours of held-out negative stream (default %(default)s)")
    p.add_argument("--positives", type=int, default=300, help="held-out positive clips (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out audio (default %(default)s)")
    p.add_argument("--no-reference", action="store_true", help="skip pymicro-wakeword")
    p.set_defaults(wake_handler=_eval)

    p = sub.add_parser("convert", help="convert a microWakeWord v2 model into the board's model file",
                       description="Writes the board's model file (.eww) for a bundled model or a v2 .tflite/.json.")
    p.add_argument("model", metavar="M", help=MODEL_HELP)
    p.add_argument("-o", "--out", metavar="FILE", help="where to write it (default: NAME.eww here)")
    p.set_defaults(wake_handler=_convert)


def run(args):
    return args.wake_handler(args)


def model_meta(spec):
    """(board model file, its metadata) for a model spec; one clear error if unusable."""
    from host_tools.wake import convert, models

    path = models.board_file(spec)
    try:
        return path, convert.read_meta(path)
    except CommandError:
        raise
    except Exception as e:  # any malformed file: one line, not a traceback
        raise CommandError(f"{path}: not a valid earshot wake-word model ({type(e).__name__}: {e})")


def _detect(args):
    from host_tools.audio import load_wav

    path, meta = model_meta(args.model)
    cutoff = meta["sensitivities"][args.sensitivity]["cutoff"]
    audio = []
    for f in args.files:  # every file is read (and any error raised) before anything runs
        pcm, notes = load_wav(f)
        for note in notes:
            print(f"earshot: {f}: {note}", file=sys.stderr)
        audio.append((f, pcm))
    from host_tools.wake import detect_runner

    def echo(hit):
        print(json.dumps({"file": str(hit["file"]), "t": round(float(hit["t"]), 3), "score": hit["score"]}),
              flush=True)

    detect_runner.run_firmware_detector(str(path), audio, cutoff, echo=echo)
    return 0


def _reference(spec):
    # What pymicro-wakeword runs for the same model: a bundled name or a v2 manifest path.
    from host_tools.wake import convert, models

    if str(spec) in models.bundled():
        return str(spec)
    if Path(str(spec)).suffix in (".tflite", ".json"):
        return str(convert.source_of(spec)[1])
    return None  # a converted .eww: its source is not at hand


def _eval(args):
    from host_tools.wake import evaluate

    if args.hours <= 0 or args.positives <= 0:
        raise CommandError("--hours and --positives must be positive")
    path, meta = model_meta(args.model)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CommandError(f"{out}: cannot create the output folder ({e.strerror})")
    reference = None if args.no_reference else _reference(args.model)
    evaluate.run_eval(path, meta, reference, out, hours=args.hours, n_pos=args.positives, seed=args.seed)
    return 0


def _convert(args):
    from host_tools.wake import convert, models

    tflite, manifest = convert.source_of(args.model)
    out = Path(args.out or models.board_name(args.model))
    meta = convert.convert(tflite, manifest, out, models.MEASURED.get(str(args.model)))
    print(f"{out}: {meta['phrase']!r}, cutoff {meta['cutoff']}, window {meta['window']}, {meta['weights']} "
          f"weights, {meta['macs']} multiply-adds every 30 ms, about {meta['ram']} bytes of RAM on the board")
    return 0
