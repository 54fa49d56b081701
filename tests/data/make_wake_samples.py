# Makes the bundled wake-word test recordings (run once; the WAVs are committed):
#   hey_jarvis.wav  four held-out "hey jarvis" utterances (voices, carrier sentences and
#                   noises the training never used), one every 6 s
#   not_jarvis.wav  40 s of held-out negative audio: speech, near misses of the phrase,
#                   TV-like babble, household noise and music
# Seeds were fixed before the first run and not picked afterwards for a result.
#   python tests/data/make_wake_samples.py
import json
from pathlib import Path

import numpy as np

from host_tools.audio import write_wav
from host_tools.wake import data

HERE = Path(__file__).parent
SLOT_S = 6.0


def main():
    pcm, ends, clips = data.phrase_recording("hey jarvis", 4, seed=2026, slot_s=SLOT_S)
    write_wav(HERE / "hey_jarvis.wav", pcm)
    (HERE / "hey_jarvis.json").write_text(json.dumps(
        {"phrase_ends_s": [round(e, 3) for e in ends], "sources": [c.source for c in clips]}, indent=1) + "\n")
    neg, segments = data.negative_stream("heldout", 40 / 3600, seed=2026, progress=False, with_segments=True)
    write_wav(HERE / "not_jarvis.wav", np.asarray(neg, np.int16))
    (HERE / "not_jarvis.json").write_text(json.dumps(
        {"segments": [{"start_s": round(a / 16000, 2), "stop_s": round(b / 16000, 2), "source": s, "text": t}
                      for a, b, s, t in segments]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
