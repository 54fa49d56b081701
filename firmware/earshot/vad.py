# End of speech from frame levels (mean |sample|): a slowly rising noise floor, speech
# when the level clears it by a margin, and an end after a hangover of non-speech.
from micropython import const

_MARGIN = const(3)  # speech is > 3 x the noise floor (about +10 dB)


class EndOfSpeech:
    def __init__(self, hangover_frames, min_level, no_speech_frames):
        self._hangover = hangover_frames
        self._min_level = min_level
        self._no_speech = no_speech_frames  # give up if nothing is said at all
        self.floor = min_level
        self.reset()

    def reset(self):
        self.heard = False
        self._quiet = 0
        self._frames = 0

    def track(self, level):
        # Called on every frame, streaming or not, so the floor is known at a press.
        if level < self.floor:
            self.floor = max(1, level)
        else:
            self.floor += (self.floor >> 8) + 1
        return level > self.floor * _MARGIN and level > self._min_level

    def update(self, level):
        # Returns True when the utterance has ended.
        speech = self.track(level)
        self._frames += 1
        if speech:
            self.heard = True
            self._quiet = 0
            return False
        self._quiet += 1
        if self.heard:
            return self._quiet >= self._hangover
        return self._frames >= self._no_speech
