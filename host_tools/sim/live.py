# A laptop microphone as the virtual board's mic (`earshot sim --mic`): recorded blocks
# are appended, as INMP441 slots, to the file the board's I2S shim reads in real time.
import threading

from host_tools.errors import CommandError

RATE = 16000
BLOCK = 320  # 20 ms


def open_microphone():
    # An iterator of int16 numpy blocks from the default input device.
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise CommandError(f"no audio input available ({e}); install PortAudio "
                           "(apt-get install libportaudio2) or feed a recording with --wav")
    try:
        sd.check_input_settings(samplerate=RATE, channels=1, dtype="int16")
        stream = sd.InputStream(samplerate=RATE, channels=1, dtype="int16", blocksize=BLOCK)
    except Exception as e:  # PortAudioError, ValueError: no device or no 16 kHz mono
        raise CommandError(f"no usable microphone ({e}); plug one in or use --wav")
    return _blocks(stream)


def _blocks(stream):
    with stream:
        while True:
            data, _overflowed = stream.read(BLOCK)
            yield data[:, 0]


class MicFeed(threading.Thread):
    """Copies blocks from `source` into the board's input file until the source ends or
    stop() is called; then marks the recording finished in `done_path`."""

    def __init__(self, source, audio_path, done_path):
        super().__init__(name="earshot-mic", daemon=True)
        self._source = source
        self._audio_path = audio_path
        self._done_path = done_path
        self._stop = threading.Event()
        self.samples = 0

    def run(self):
        import numpy as np

        try:
            with open(self._audio_path, "ab") as out:
                for block in self._source:
                    if self._stop.is_set():
                        break
                    out.write((np.asarray(block, dtype="<i4") << 16).astype("<i4").tobytes())
                    out.flush()
                    self.samples += len(block)
        finally:
            with open(self._done_path, "wb") as f:
                f.write(b"1")

    def stop(self):
        self._stop.set()
