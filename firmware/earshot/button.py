# Button logic, pure so tests can drive it with made-up samples: debounce the raw level,
# then turn presses into SHORT (released before LONG_MS) or LONG (fires while still held,
# once LONG_MS is reached, so mute does not wait for the release).
from micropython import const

SHORT = const(1)
LONG = const(2)

LONG_MS = const(1500)
_STABLE_MS = const(30)


class Button:
    def __init__(self):
        self._raw = False
        self._raw_since = 0
        self.pressed = False  # debounced
        self._pressed_at = 0
        self._long_sent = False

    def update(self, raw, now_ms):
        # Feed the raw level every poll; returns SHORT, LONG or None.
        if raw != self._raw:
            self._raw = raw
            self._raw_since = now_ms
            return None
        if raw != self.pressed and now_ms - self._raw_since >= _STABLE_MS:
            self.pressed = raw
            if raw:
                self._pressed_at = self._raw_since
                self._long_sent = False
                return None
            return None if self._long_sent else SHORT
        if self.pressed and not self._long_sent and now_ms - self._pressed_at >= LONG_MS:
            self._long_sent = True
            return LONG
        return None
