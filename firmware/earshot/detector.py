# The wake-word detector: a pure streaming class fed one 20 ms PCM frame at a time.
#   process(buf, at) -> bool   True on the frame where the wake phrase is detected; the
#                              frame is 320 s16 samples at byte offset `at` of buf
#   score                      the mean probability (0-255) that fired, for the log
#   reset()                    forget the past (after the mic was off)
#
# WakeDetector runs microWakeWord's models as ESPHome does: the microfrontend makes one
# feature vector per 10 ms slice (frontend.py), the int8 model runs once per `stride`
# slices (inference.py), and after every slice the decision is
#   detected = sum of the last `window` probabilities > cutoff x window
# (ESPHome's micro_wake_word, cutoffs in 1/255). After a detection, and after a reset,
# it rests: the probabilities are zeroed and _REST slices whose latest probability is
# below the cutoff must pass before it can fire again. host_tools/wake/decision.py is the
# same rule for the host's sweeps (a test checks they agree).
from micropython import const

from earshot.frontend import Frontend
from earshot.inference import Net

_REST = const(100)  # ESPHome's MIN_SLICES_BEFORE_DETECTION: 1 s of slices
_SLICE_BYTES = const(320)  # 160 samples


class WakeDetector:
    name = "wake"

    def __init__(self, model, cutoff):
        # model: wakemodel.Model; cutoff: 0..255 or a sensitivity name ("default" ...)
        if isinstance(cutoff, str):
            cutoff = model.cutoff(cutoff)
        if not isinstance(cutoff, int) or not 0 <= cutoff <= 255:
            raise ValueError("cutoff must be 0..255 or a sensitivity name")
        self.model = model
        self.cutoff = cutoff
        self._frontend = Frontend()
        self._net = Net(model)
        self._probs = bytearray(model.window)
        self._bar = cutoff * model.window
        self.reset()

    def reset(self):
        # As after a fresh start: the frontend and the model's streaming state from scratch.
        self._frontend.reset()
        self._net.reset()
        self._rest()
        self.score = 0

    def _rest(self):
        probs = self._probs
        for i in range(len(probs)):
            probs[i] = 0
        self._sum = 0
        self._last = 0
        self._ignore = -_REST

    def process(self, buf, at):
        woke = self._slice(buf, at)
        return self._slice(buf, at + _SLICE_BYTES) or woke

    def _slice(self, buf, at):
        # One 10 ms slice: features, maybe an invocation, then the decision.
        if not self._frontend.step(buf, at):
            return False
        net, probs = self._net, self._probs
        if net.feed(self._frontend.out):
            i = self._last + 1
            if i == len(probs):
                i = 0
            self._sum += net.prob - probs[i]
            probs[i] = net.prob
            self._last = i
        if probs[self._last] < self.cutoff and self._ignore < 0:
            self._ignore += 1
        if self._ignore < 0 or self._sum <= self._bar:
            return False
        self.score = self._sum // len(probs)
        self._rest()
        return True
