# The board's pin map: a copy of one of the repo's boards/*.json, stored on the board as
# board.json. Checked here, before any hardware is touched.
import json

PATH = "board.json"


class PinMapError(Exception):
    pass


def _need_int(section, key):
    v = section.get(key) if type(section) is dict else None
    if type(v) is not int or v < 0:
        raise PinMapError("pin map needs a non-negative integer for " + key)
    return v


def load(path=PATH):
    try:
        with open(path) as f:
            pins = json.loads(f.read())
    except OSError:
        raise PinMapError("no pin map at " + path + "; copy one of boards/*.json there")
    except ValueError:
        raise PinMapError("pin map " + path + " is not valid JSON")
    if type(pins) is not dict or type(pins.get("name")) is not str:
        raise PinMapError("pin map " + path + " has no board name")
    for section, keys in (("i2s", ("id", "sck", "ws", "sd")), ("ring", ("pin", "leds")), ("button", ("pin",))):
        for key in keys:
            _need_int(pins.get(section), key)
    return pins
