# Which wake-word model a board gets. A model is named by
#   - a bundled name: microWakeWord's published v2 models (hey_jarvis, okay_nabu, alexa,
#     hey_mycroft; Apache-2.0, by Kevin Ahrendt), shipped in the pymicro-wakeword package;
#   - a path to any other microWakeWord v2 model (its .tflite or its .json manifest);
#   - a path to a model already converted for the board (.eww).
# The host converts (convert.py) when it deploys or simulates, so no converted weights live
# in the repository; conversions are cached by the hash of what went in.
import hashlib
import json
import os
from pathlib import Path

from host_tools.errors import CommandError

DEFAULT = "hey_jarvis"
EXT = ".eww"  # the board's model files
# Sensitivities of the bundled models, measured by `earshot wake eval --model NAME` on the
# held-out set (300 positives, 2 h of negative stream with near misses of the model's own
# phrase, seed 0) and picked by evaluate.pick_sensitivities (README "The wake word").
# frr: all held-out voices; frr_natural: the Piper voice. Other models get the model's own
# cutoff for all three, marked unmeasured.
MEASURED = {
    "hey_jarvis": {"low": dict(cutoff=254, fa_per_hour=1.0, frr=0.82, frr_natural=0.405),
                   "default": dict(cutoff=247, fa_per_hour=1.5, frr=0.75, frr_natural=0.253),
                   "high": dict(cutoff=128, fa_per_hour=3.0, frr=0.643, frr_natural=0.114)},
    "okay_nabu": {"low": dict(cutoff=236, fa_per_hour=5.0, frr=0.827, frr_natural=0.667),
                  "default": dict(cutoff=216, fa_per_hour=10.0, frr=0.743, frr_natural=0.606),
                  "high": dict(cutoff=153, fa_per_hour=19.5, frr=0.563, frr_natural=0.409)},
    "alexa": {"low": dict(cutoff=249, fa_per_hour=3.0, frr=0.76, frr_natural=0.603),
              "default": dict(cutoff=229, fa_per_hour=8.0, frr=0.687, frr_natural=0.5),
              "high": dict(cutoff=153, fa_per_hour=15.0, frr=0.543, frr_natural=0.362)},
    "hey_mycroft": {"low": dict(cutoff=254, fa_per_hour=10.0, frr=0.807, frr_natural=0.418),
                    "default": dict(cutoff=242, fa_per_hour=18.0, frr=0.71, frr_natural=0.328),
                    "high": dict(cutoff=153, fa_per_hour=34.0, frr=0.587, frr_natural=0.194)},
}


def bundled():
    from host_tools.wake.convert import BUNDLED

    return BUNDLED


def for_phrase(phrase):
    """The bundled model for a wake phrase ("Hey Jarvis", "hey jarvis" ...), or None."""
    key = "_".join("".join(ch if ch.isalnum() else " " for ch in str(phrase).lower()).split())
    key = {"ok_nabu": "okay_nabu"}.get(key, key)
    return key if key in bundled() else None


def board_name(spec):
    """The model's file name on the board, e.g. hey_jarvis.eww."""
    return Path(str(spec)).stem + EXT


def board_file(spec):
    """A file the board can load for `spec` (see the top of this file): the .eww itself,
    or a conversion made now or earlier (cached)."""
    path = Path(str(spec))
    if path.suffix == EXT:
        if not path.is_file():
            raise CommandError(f"{path}: no such model file")
        return path
    from host_tools.wake import convert

    tflite, manifest = convert.source_of(spec)
    sens = MEASURED.get(str(spec)) if str(spec) in bundled() else None
    key = _key(tflite, manifest, sens, convert)
    out = _cache_dir() / f"{board_name(tflite)[:-len(EXT)]}-{key[:16]}{EXT}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        convert.convert(tflite, manifest, out, sens)
    return out


def _key(tflite, manifest, sens, convert):
    h = hashlib.sha256()
    for part in (Path(tflite).read_bytes() if Path(tflite).is_file() else b"",
                 Path(manifest).read_bytes() if Path(manifest).is_file() else b"",
                 json.dumps(sens, sort_keys=True).encode(), Path(convert.__file__).read_bytes()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "earshot" / "models"
