# Runs the FIRMWARE's wake-word code (firmware/earshot/frontend.py, inference.py,
# detector.py) over recordings under the MicroPython unix port: what `earshot wake
# detect` and `earshot wake eval` report is what the board would do, not what a
# re-implementation thinks it would do.
#
# One MicroPython process per call. The host streams the audio through its stdin:
#   per file  u32 little-endian sample count n, then n int16 samples (little-endian)
#   end       u32 0xFFFFFFFF
# and reads one line per event from its stdout:
#   "D <file> <frame> <score>"   (detect) a detection on 20 ms frame `frame`
#   "O <file> <hex>"             (outputs) the model's uint8 outputs, a block at a time
#   "E <file> <frames>"          end of a file (the state is reset before the next)
#   "X <message>"                the model was refused (wakemodel.ModelError)
# The MicroPython side reads blocks of 200 frames into one buffer and allocates nothing
# per frame.
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from host_tools.errors import CommandError
from host_tools.paths import FIRMWARE, micropython

RATE = 16000
HOP = 320  # samples per 20 ms board frame
BLOCK_FRAMES = 200
_END = 0xFFFFFFFF

_BOARD_SIDE = """
import sys, binascii, micropython
from earshot import wakemodel
from earshot.detector import WakeDetector
from earshot.frontend import Frontend
from earshot.inference import Net

BLOCK = %(block)d
FRAME = 640

def fill(stream, mv, n):
    # reads exactly n bytes into mv (a pipe hands them out in pieces)
    got = 0
    while got < n:
        k = stream.readinto(mv[got:n])
        if not k:
            return got
        got += k
    return got

class Outputs:
    # the frontend and the model without the decision: every invocation's output
    def __init__(self, model):
        self.fe = Frontend()
        self.net = Net(model)
        self.out = bytearray(2 * BLOCK)
        self.n = 0

    def reset(self):
        self.fe.reset()
        self.net.reset()

    @micropython.native
    def run(self, buf, frames, file, first):
        fe, net, out = self.fe, self.net, self.out
        n = 0
        for i in range(2 * frames):
            if fe.step(buf, i * 320) and net.feed(fe.out):
                out[n] = net.prob
                n += 1
        if n:
            print("O", file, binascii.hexlify(out[:n]).decode())

class Detections:
    def __init__(self, model, cutoff):
        self.det = WakeDetector(model, cutoff)

    def reset(self):
        self.det.reset()

    @micropython.native
    def run(self, buf, frames, file, first):
        det = self.det
        for i in range(frames):
            if det.process(buf, i * FRAME):
                print("D", file, first + i, det.score)

def main(path, mode, cutoff):
    try:
        model = wakemodel.load(path)
        if mode == "outputs":
            job = Outputs(model)
        else:
            job = Detections(model, int(cutoff) if cutoff.isdigit() else cutoff)
    except (wakemodel.ModelError, ValueError) as e:
        print("X", e)
        return
    stream = sys.stdin.buffer
    head = bytearray(4)
    hv = memoryview(head)
    buf = bytearray(BLOCK * FRAME)
    mv = memoryview(buf)
    file = 0
    while fill(stream, hv, 4) == 4:
        n = int.from_bytes(head, "little")
        if n == 0xFFFFFFFF:
            break
        left = 2 * n
        frame = 0
        while left:
            want = min(left, BLOCK * FRAME)
            got = fill(stream, mv, want)
            left -= got
            frames = got // FRAME
            job.run(buf, frames, file, frame)
            frame += frames
            if got < want:
                left = 0
        print("E", file, frame)
        job.reset()
        file += 1

main(sys.argv[-3], sys.argv[-2], sys.argv[-1])
"""


def _inputs(items):
    # -> list of (name, int16 array): a WAV's path (read and converted like the simulator
    # does), a pair's name, or a bare array's index
    from host_tools.audio import load_wav

    out = []
    for k, item in enumerate(items):
        if isinstance(item, (str, Path)):
            pcm, _notes = load_wav(item)
            out.append((str(item), pcm))
        elif isinstance(item, tuple):
            name, pcm = item
            out.append((str(name), np.asarray(pcm)))
        else:
            out.append((k, np.asarray(item)))
    for name, pcm in out:
        if pcm.ndim != 1:
            raise CommandError(f"input {name}: expected mono 16 kHz samples")
    return [(name, np.clip(pcm, -32768, 32767).astype("<i2", copy=False)) for name, pcm in out]


def _run(model_path, inputs, mode, cutoff, on_line, stats):
    files = _inputs(inputs if isinstance(inputs, (list, tuple)) else [inputs])
    env = dict(os.environ, MICROPYPATH=f"{FIRMWARE}:.frozen")
    code = _BOARD_SIDE % {"block": BLOCK_FRAMES}
    started = time.monotonic()
    try:
        proc = subprocess.Popen([micropython(), "-X", "heapsize=4m", "-c", code, str(model_path), mode, str(cutoff)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    except OSError as e:
        raise CommandError(f"cannot start MicroPython ({e})")

    def feed():
        try:
            for _name, pcm in files:
                n = len(pcm) // HOP * HOP
                proc.stdin.write(n.to_bytes(4, "little"))
                view = memoryview(pcm[:n].tobytes())
                for i in range(0, len(view), 1 << 20):
                    proc.stdin.write(view[i:i + (1 << 20)])
            proc.stdin.write(_END.to_bytes(4, "little"))
            proc.stdin.close()
        except (BrokenPipeError, OSError):  # the board side stopped: its output says why
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    frames, refused = 0, None
    for raw in proc.stdout:
        parts = raw.decode(errors="replace").split()
        if not parts:
            continue
        if parts[0] == "E":
            frames += int(parts[2])
        elif parts[0] == "X":
            refused = raw.decode(errors="replace")[2:].strip()
        else:
            on_line(files, parts)
    err = proc.stderr.read().decode(errors="replace")
    status = proc.wait()
    feeder.join()
    if refused:
        raise CommandError(f"the firmware refused the model: {refused}")
    if status != 0:
        raise CommandError(f"the firmware's wake-word code failed (MicroPython exit {status}): {err.strip()[-500:]}")
    if stats is not None:
        wall = time.monotonic() - started
        audio_s = frames * HOP / RATE
        stats.update({"frames": frames, "audio_s": audio_s, "wall_s": wall,
                      "x_realtime": audio_s / wall if wall > 0 else float("inf")})
    return files


def run_firmware_detector(model_path, inputs, cutoff="default", echo=None, stats=None):
    """Detections of the firmware's WakeDetector on each input, in order.

    inputs: WAV paths, int16 arrays or (name, array) pairs (16 kHz mono). cutoff: 0..255
    or a sensitivity name of the model. Returns [{"file", "t", "score"}]: file is the path
    as given, the pair's name or a bare array's index; t is the end of the detecting frame
    in seconds from the start of that input; score 0..255 (the mean probability). echo(d)
    is called as each one arrives. stats (a dict) receives frames, audio_s, wall_s and
    x_realtime."""
    found = []

    def on_line(files, parts):
        if parts[0] == "D":
            k, frame, score = int(parts[1]), int(parts[2]), int(parts[3])
            d = {"file": files[k][0], "t": round((frame + 1) * HOP / RATE, 2), "score": score}
            found.append(d)
            if echo:
                echo(d)

    _run(model_path, inputs, "detect", cutoff, on_line, stats)
    return found


def firmware_outputs(model_path, inputs, stats=None):
    """The model's uint8 output at every invocation (one per 30 ms) of the firmware's
    frontend and runtime, per input, as numpy arrays (state reset between inputs)."""
    blocks = {}

    def on_line(files, parts):
        if parts[0] == "O":
            blocks.setdefault(int(parts[1]), []).append(bytes.fromhex(parts[2]))

    files = _run(model_path, inputs, "outputs", 0, on_line, stats)
    return [np.frombuffer(b"".join(blocks.get(k, [])), np.uint8) for k in range(len(files))]
