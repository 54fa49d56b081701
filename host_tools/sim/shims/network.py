# network on the virtual board: a station on loopback (the LAN). As on a board, it is
# connected only once told to join a network (any SSID joins; on the serial board it
# takes as long as on a real one), and not during a scripted Wi-Fi outage
# (`earshot sim --wifi-outage`).
import _sim

STA_IF = 0
AP_IF = 1


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._joined = False
        self._up_at = 0

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = on

    def connect(self, ssid=None, key=None, **kw):
        # Joining takes wifi_join_s of audio time (`earshot sim --serial`: as on a board).
        self._joined = bool(ssid)
        self._up_at = _sim.samples + int(_sim.config.get("wifi_join_s", 0) * _sim.RATE)

    def disconnect(self):
        self._joined = False

    def isconnected(self):
        return self._active and self._joined and _sim.samples >= self._up_at and _sim.wifi_up

    def status(self, param=None):
        return 1010 if self.isconnected() else 0

    def ifconfig(self, *args):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def config(self, *args, **kw):
        return "earshot-sim" if args else None
