# The only place that constructs hardware. It reads the board's pin map (a copy of one
# of the repo's boards/*.json, stored on the board as board.json) and builds the I2S
# microphone, the ring, the button and network connections for the logic to use.
import asyncio
import json

import machine
import network
from machine import I2S, Pin
from neopixel import NeoPixel

PINMAP_PATH = "board.json"
RATE = 16000


class BoardError(Exception):
    pass


def _need_int(section, key):
    v = section.get(key) if type(section) is dict else None
    if type(v) is not int or v < 0:
        raise BoardError("pin map needs a non-negative integer for " + key)
    return v


def load_pinmap(path=PINMAP_PATH):
    try:
        with open(path) as f:
            pins = json.loads(f.read())
    except OSError:
        raise BoardError("no pin map at " + path + "; copy one of boards/*.json there")
    except ValueError:
        raise BoardError("pin map " + path + " is not valid JSON")
    if type(pins) is not dict or type(pins.get("name")) is not str:
        raise BoardError("pin map " + path + " has no board name")
    for section, keys in (("i2s", ("id", "sck", "ws", "sd")), ("ring", ("pin", "leds")), ("button", ("pin",))):
        for key in keys:
            _need_int(pins.get(section), key)
    return pins


class Hardware:
    def __init__(self, pins):
        self.name = pins["name"]
        self._pins = pins
        if pins.get("cpu_hz"):
            machine.freq(pins["cpu_hz"])
        ring = pins["ring"]
        self.ring = NeoPixel(Pin(ring["pin"], Pin.OUT), ring["leds"])
        self.button = Pin(pins["button"]["pin"], Pin.IN, Pin.PULL_UP)
        self._wlan = None

    def open_mic(self, frame_bytes):
        # A new I2S each time: mute deinitialises it, which stops the mic clock.
        p = self._pins["i2s"]
        return I2S(p["id"], sck=Pin(p["sck"]), ws=Pin(p["ws"]), sd=Pin(p["sd"]),
                   mode=I2S.RX, bits=32, format=I2S.MONO, rate=RATE, ibuf=frame_bytes * 8)

    def button_pressed(self):
        return self.button.value() == 0  # wired to GND, pulled up

    def wifi_connected(self, ssid, password):
        # Starts joining on the first call; True once the station has an address.
        if self._wlan is None:
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
            if ssid:
                self._wlan.connect(ssid, password)
        return self._wlan.isconnected()

    async def open_connection(self, host, port):
        return await asyncio.open_connection(host, port)

    def deinit(self):
        self.ring.fill((0, 0, 0))
        self.ring.write()
