# The only place that constructs hardware: from the board's pin map (see pinmap.py) it
# builds the I2S microphone, the ring, the button and network connections.
import asyncio

import machine
import network
from machine import I2S, Pin
from micropython import const
from neopixel import NeoPixel

RATE = 16000
_WIFI_POLL_MS = const(100)


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

    async def wifi_up(self, ssid, password, wait_ms):
        # Starts joining on the first call; returns once the station has an address.
        # Joining takes a few seconds: OSError only after wait_ms, or at once with no SSID.
        if self._wlan is None:
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
            if ssid:
                self._wlan.connect(ssid, password)
        waited = 0
        while not self._wlan.isconnected():
            if not ssid or waited >= wait_ms:
                raise OSError("no Wi-Fi")
            await asyncio.sleep_ms(_WIFI_POLL_MS)
            waited += _WIFI_POLL_MS

    async def open_connection(self, host, port, tls, server_name):
        # TLS: the handshake checks the receiver against the pinned certificate and name.
        return await asyncio.open_connection(host, port, ssl=tls, server_hostname=server_name)

    def deinit(self):
        self.ring.fill((0, 0, 0))
        self.ring.write()
