# Makes the bundled recordings (run once; the WAVs and their JSON are committed):
#   demo.wav        `make demo`: a quiet room, "Hey Jarvis, what's the weather like tomorrow
#                   in Berlin?" (the wake word starts the session), then a pause and a
#                   request meant for push-to-talk (the demo presses the button at
#                   demo.json's press_s)
#   hey_jarvis.wav  four "hey jarvis" requests, one every 6 s, in the Piper voice the
#                   project ships (a voice microWakeWord's model hears), each with its own
#                   speaking rate, pitch, room and background sound
# not_jarvis.wav (40 s of held-out negatives: speech, near misses, babble, noise, music)
# was made by an earlier version of this script from data.negative_stream("heldout", ...)
# and is kept as it is. Seeds and settings were fixed before the first run.
#   python tests/data/make_wake_samples.py
import json
from pathlib import Path

import numpy as np

from host_tools.audio import write_wav
from host_tools.wake import data

HERE = Path(__file__).parent
RATE = 16000
SLOT_S = 6.0
# (request, length scale, noise scale, pitch factor, background, SNR dB, reverb)
PHRASES = (
    ("Hey Jarvis, what time is it?", 1.0, 0.667, 1.00, "fan", 20, False),
    ("Hey Jarvis, turn on the kitchen lights.", 0.85, 0.5, 1.05, "music", 15, True),
    ("Hey Jarvis, set a timer for ten minutes.", 1.2, 0.8, 0.95, "rain", 15, False),
    ("Hey Jarvis, play some jazz.", 1.1, 0.6, 1.03, "hum50", 12, True),
)
DEMO_WAKE = "Hey Jarvis, what's the weather like tomorrow in Berlin?"
DEMO_PRESSED = "And will it rain in Paris?"


def _say(piper, text, ls, ns, pitch=1.0):
    # Piper speech at 16 kHz (float, peak 1), the phrase's end: where "Jarvis" ends, found
    # as the end of the first sentence spoken on its own.
    first = text.split(",")[0]
    x = piper.say(text, ls, ns, 0.8)
    end = data._speech_end(piper.say(first, ls, ns, 0.8))
    if pitch != 1.0:  # speaker variety: formants and pitch move together, as in a smaller/larger voice
        x = data._speed(x, pitch, 0)
        end = int(end / pitch)
    return x / np.max(np.abs(x)), end


def _room(seconds, recipe, seed, level_db):
    return data.noise(recipe, seconds, seed, level_db).astype(np.float64) / 32768.0


def hey_jarvis(piper):
    rng = np.random.default_rng(2027)
    slot = int(SLOT_S * RATE)
    audio = _room(SLOT_S * len(PHRASES), "white", 1, -62)
    ends, sources = [], []
    for k, (text, ls, ns, pitch, background, snr, reverb) in enumerate(PHRASES):
        x, end = _say(piper, text, ls, ns, pitch)
        if reverb:
            x = data._reverb(x, rng)
        lead = int(1.0 * RATE)
        x = data.add_noise(np.concatenate([np.zeros(lead), x, np.zeros(RATE // 2)]) * 0.2,
                           _room(SLOT_S, background, 10 + k, -30), snr, rng)
        audio[k * slot:k * slot + len(x)] += x[:slot]
        ends.append((k * slot + lead + end) / RATE)
        sources.append(f"piper:en_US-joe-medium:ls{ls}:ns{ns}:pitch{pitch}:{background}@{snr}dB"
                       + (":reverb" if reverb else ""))
    write_wav(HERE / "hey_jarvis.wav", data._to_int16(audio))
    (HERE / "hey_jarvis.json").write_text(json.dumps(
        {"phrase_ends_s": [round(e, 3) for e in ends], "sources": sources,
         "texts": [p[0] for p in PHRASES]}, indent=1) + "\n")


def demo(piper):
    audio = _room(14.0, "fan", 3, -52)
    wake, end = _say(piper, DEMO_WAKE, 1.0, 0.667)
    pressed, _ = _say(piper, DEMO_PRESSED, 1.0, 0.667)
    at_wake, at_pressed = int(1.5 * RATE), int(9.3 * RATE)
    audio[at_wake:at_wake + len(wake)] += 0.2 * wake
    audio[at_pressed:at_pressed + len(pressed)] += 0.2 * pressed
    write_wav(HERE / "demo.wav", data._to_int16(audio))
    (HERE / "demo.json").write_text(json.dumps(
        {"phrase_end_s": round((at_wake + end) / RATE, 3), "wake_text": DEMO_WAKE,
         "press_s": 9.0, "pressed_text": DEMO_PRESSED, "pressed_s": 9.3}, indent=1) + "\n")


def main():
    piper = data._Piper(seed=0)
    hey_jarvis(piper)
    demo(piper)


if __name__ == "__main__":
    main()
