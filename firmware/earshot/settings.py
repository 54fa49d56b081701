# The board's settings file: load with validation and defaults, save atomically.
# A missing or broken file never stops the board: it boots on defaults and says why on
# the console. Unknown keys and invalid values stay in the file untouched; save() only
# rewrites the keys the firmware changed (e.g. "muted").
import json
import os

from earshot.log import Logger, value

PATH = "settings.json"

# key: (type, default, low, high). Ranges are what the code is designed for.
SCHEMA = {
    "device": (str, "earshot", 1, 32),
    "receiver_host": (str, "", 0, 253),
    "receiver_port": (int, 10700, 1, 65535),
    "wifi_ssid": (str, "", 0, 32),
    "wifi_password": (str, "", 0, 64),
    "muted": (bool, False, None, None),
    "brightness": (int, 48, 8, 255),
    "gain_db": (int, 12, -20, 20),
    "dc_removal": (bool, True, None, None),
    "preroll_ms": (int, 1000, 0, 1000),
    "max_session_s": (int, 15, 2, 60),
    "vad_hangover_ms": (int, 700, 200, 3000),
    "vad_min_level": (int, 40, 1, 10000),
    "wake_model": (str, "hey_jarvis", 0, 64),  # a model file, NAME = NAME.eww; "" = push-to-talk only
    "sensitivity": (str, "default", 3, 7),
}
_CHOICES = {"sensitivity": ("low", "default", "high")}

_SECRET_KEYS = ("wifi_password",)

_log = Logger("settings")


class Settings:
    def __init__(self, raw, path):
        self.path = path
        self._raw = raw  # what the file holds, including keys we do not know
        self.values = {}
        for key in SCHEMA:
            self.values[key] = _validated(key, raw.get(key))

    def __getitem__(self, key):
        return self.values[key]

    def save(self, key, new):
        # Atomic: write a temp file, then rename over the old one (LittleFS and POSIX
        # renames are atomic), so a power cut leaves either the old or the new file.
        self.values[key] = new
        self._raw[key] = new
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(self._raw))
        os.rename(tmp, self.path)
        _log.info("saved", "key=" + key + " value=" + value(new))


def _validated(key, v):
    kind, default, low, high = SCHEMA[key]
    if v is None:
        return default
    ok = type(v) is kind
    if ok and kind is int:
        ok = low <= v <= high
    elif ok and kind is str:
        ok = low <= len(v) <= high and v in _CHOICES.get(key, (v,))
    if not ok:
        shown = "***" if key in _SECRET_KEYS else value(v)
        _log.warn("invalid", "key=" + key + " value=" + shown + " using=" + value(default))
        return default
    return v


def load(path=PATH):
    try:
        with open(path) as f:
            raw = json.loads(f.read())
        if type(raw) is not dict:
            raise ValueError("not a JSON object")
    except OSError:
        _log.info("missing", "file=" + path + " using=defaults")
        raw = {}
    except ValueError as e:
        # Keep the user's broken file beside for fixing; boot on defaults.
        kept = path + ".bad"
        os.rename(path, kept)
        _log.error("unreadable", "file=" + path + " error=" + value(e) + " using=defaults kept=" + kept)
        raw = {}
    for key in raw:
        if key not in SCHEMA:
            _log.warn("unknown", "key=" + value(key) + " ignored=yes")
    return Settings(raw, path)
