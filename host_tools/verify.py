# Wake-word verification on the receiver (DESIGN.md P6): a second, larger detector
# (microWakeWord, via pymicro-wakeword) listens to the start of every session the board
# began on its wake word. The board streams its pre-roll, so the phrase it heard is in the
# first `preroll_ms` of audio; the verifier decides once it has heard that plus DECIDE_AFTER_MS.
# A session it rejects is never stored; the board is told to stop at once.
from host_tools.wake.models import for_phrase

RATE = 16000
DECIDE_AFTER_MS = 300  # audio past the board's wake point the verifier may still need
DEFAULT_CUTOFF = 0.5  # mean microWakeWord probability; see the README for what it keeps and removes


def available(phrase):
    """True if a microWakeWord model exists for the phrase (and the package is installed)."""
    try:
        import pymicro_wakeword  # noqa: F401
    except ImportError:
        return False
    return bool(phrase) and for_phrase(phrase) is not None


class WakeCheck:
    """Feeds one session's audio; `decision` becomes True (heard) or False (not heard)."""

    def __init__(self, phrase, preroll_ms, cutoff=DEFAULT_CUTOFF):
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self._mww = MicroWakeWord.from_builtin(Model(for_phrase(phrase)))
        self._features = MicroWakeWordFeatures()
        self.cutoff = cutoff
        self.score = 0.0  # the highest mean probability so far
        self.decision = None
        self._need = (max(0, int(preroll_ms)) + DECIDE_AFTER_MS) * RATE // 1000 * 2  # bytes
        self._heard = 0

    def feed(self, pcm):
        """pcm: s16le bytes at 16 kHz. Returns the decision (None until it is made)."""
        if self.decision is not None:
            return self.decision
        for feat in self._features.process_streaming(bytes(pcm)):
            p = self._mww.process_streaming_prob(feat)
            if p is not None:
                self.score = max(self.score, p)
        self._heard += len(pcm)
        if self.score > self.cutoff:
            self.decision = True
        elif self._heard >= self._need:
            self.decision = False
        if self.decision is not None:
            self._mww.close()
        return self.decision

    def final(self):
        """The decision, made now on what was heard if the session ended before it."""
        return self.decision if self.decision is not None else self.score > self.cutoff

    def close(self):
        if self.decision is None:
            self._mww.close()


# --- what the check does to the board's detections (`earshot wake eval`) ----------------------


def session_audio(pcm, wake_sample, preroll_ms=1000):
    """What the board streams up to the verdict: the pre-roll before its wake point and
    DECIDE_AFTER_MS after it."""
    a = max(0, wake_sample - preroll_ms * RATE // 1000)
    return pcm[a:wake_sample + DECIDE_AFTER_MS * RATE // 1000], (wake_sample - a) * 1000 // RATE


def verdicts(phrase, pcm, wake_samples, cutoff=DEFAULT_CUTOFF):
    """For each wake point in pcm: True if the receiver would keep the session."""
    import numpy as np

    out = []
    for w in wake_samples:
        audio, preroll_ms = session_audio(pcm, int(w))
        check = WakeCheck(phrase, preroll_ms, cutoff)
        check.feed(np.asarray(audio, "<i2").tobytes())
        out.append(check.final())
        check.close()
    return out
