# Firmware modules under the MicroPython interpreter: the audio path, its allocation-free
# steady state, the button, end of speech, settings and the Wyoming chunk framing.
import json
import socket

import numpy as np
import pytest

from host_tools import reference
from host_tools.trace import is_listening, is_muted
from tests.conftest import json_lines

FAKE_I2S = """
import struct
class FakeI2S:
    # Hands out preset 32-bit slots like the INMP441 would, one 20 ms frame per read,
    # from slices made up front (no allocation per read).
    def __init__(self, samples):
        src = bytearray(len(samples) * 4)
        for i, s in enumerate(samples):
            struct.pack_into('<i', src, i * 4, s << 16)
        mv = memoryview(src)
        self.frames = [mv[i:i + 1280] for i in range(0, len(src), 1280)]
        self.next = 0
        self.on = True
    def readinto(self, buf):
        buf[:] = self.frames[self.next]
        self.next = (self.next + 1) % len(self.frames)
        return len(buf)
    def deinit(self):
        self.on = False
"""


def _samples(n, seed=1):
    rng = np.random.default_rng(seed)
    s = rng.integers(-32768, 32768, n)
    s[:4] = [32767, -32768, 0, -1]
    return s.tolist()


@pytest.mark.parametrize("gain_db,dc", [(0, False), (12, True), (20, True), (-6, False)])
def test_mic_conversion_matches_the_documented_reference(mpy, gain_db, dc):
    samples = _samples(320 * 6)
    out = mpy(FAKE_I2S + f"""
from earshot.mic import Mic, FrameRing
i2s = FakeI2S({samples})
ring = FrameRing(8)
mic = Mic(lambda n: i2s, ring, {gain_db}, {dc})
mic.start()
pcm, stored, sent = [], [], bytearray(640)
for k in range(6):
    pcm += list(struct.unpack('<320h', mic.capture()))
    stored += list(ring.buf[ring.offset(k):ring.offset(k) + 320])
    ring.copy_out(k, sent, 0)
    pcm += list(struct.unpack('<320h', sent))
import json
print(json.dumps([pcm, stored]))
""")
    frames, stored = json.loads(out)
    frames = np.array(frames).reshape(6, 2, 320)
    heard, sent = frames[:, 0].ravel(), frames[:, 1].ravel()
    want = reference.convert(samples, gain_db, dc)
    assert np.array_equal(heard, want)  # what the detector hears
    assert np.array_equal(np.array(stored, np.uint8), reference.ulaw(want))  # the ring: G.711 u-law
    assert np.array_equal(sent, reference.sent(samples, gain_db, dc))  # what leaves the board
    if gain_db == 0 and not dc:
        assert heard.tolist() == samples  # bit for bit


def test_dc_removal_takes_out_an_offset(mpy):
    out = mpy(FAKE_I2S + """
from earshot.mic import Mic, FrameRing
i2s = FakeI2S([3000 + (i % 7) for i in range(320)])
ring = FrameRing(4)
mic = Mic(lambda n: i2s, ring, 0, True)
mic.start()
for _ in range(100):
    frame = mic.capture()
s = struct.unpack('<320h', frame)
print(sum(s) // len(s))
""")
    assert abs(int(out)) < 10  # a 3000 offset is gone after 2 s


def test_listening_loop_does_not_allocate(mpy):
    # The real App listening and button tasks under asyncio, heap locked in steady state:
    # any allocation raises MemoryError and fails the run.
    out = mpy(FAKE_I2S + """
import asyncio, micropython
from earshot.app import App
from earshot.mic import Mic, FrameRing
from earshot.ring import Ring
from earshot.vad import EndOfSpeech
from earshot.app import NoDetector

class Done(Exception):
    pass

class CountingI2S(FakeI2S):
    def readinto(self, buf):
        self.count += 1
        if self.count == 100:
            micropython.heap_lock()
        elif self.count == 600:
            micropython.heap_unlock()
            raise Done()
        return FakeI2S.readinto(self, buf)

class Pixels:
    def __init__(self, n): self.px = [(0, 0, 0)] * n
    def __len__(self): return len(self.px)
    def __setitem__(self, i, v): self.px[i] = v
    def write(self): pass

class Hw:
    def button_pressed(self): return False
    def deinit(self): pass

i2s = CountingI2S([(i * 37) % 2000 - 1000 for i in range(320 * 4)])
i2s.count = 0
ring = FrameRing(64)
mic = Mic(lambda n: i2s, ring, 12, True)
settings = {"max_session_s": 15, "preroll_ms": 1000, "muted": False}
app = App(Hw(), settings, mic, Ring(Pixels(12), 48), None, None, NoDetector(), EndOfSpeech(35, 40, 200))
mic.start()
app.state = 1  # idle

async def main():
    tasks = [asyncio.create_task(app._listen()), asyncio.create_task(app._watch_button())]
    try:
        await tasks[0]
    except Done:
        pass
    tasks[1].cancel()

asyncio.run(main())
print('{"frames": %d}' % i2s.count)
""")
    assert json_lines(out) == [{"frames": 600}]


def test_button_short_long_and_bounce(mpy):
    out = mpy("""
from earshot.button import Button, SHORT, LONG
b = Button()
events = []
def feed(level, t0, t1, step=10):
    for t in range(t0, t1, step):
        e = b.update(level, t)
        if e: events.append((e, t))
feed(False, 0, 100)
# contact bounce: 5 ms blips must not count
for t in (100, 105, 110):
    b.update(t % 10 == 0, t)
feed(False, 115, 200)
feed(True, 200, 400)      # 200 ms press
feed(False, 400, 600)
feed(True, 600, 2400)     # 1.8 s hold
feed(False, 2400, 2600)
print([(e, t) for e, t in events])
print(SHORT, LONG)
""")
    lines = out.splitlines()
    events = json.loads(lines[0].replace("(", "[").replace(")", "]"))
    short, long_ = map(int, lines[1].split())
    assert [e for e, _ in events] == [short, long_]
    assert 400 <= events[0][1] <= 450  # short fires on release
    assert 2100 <= events[1][1] <= 2150  # long fires 1.5 s into the hold, still held


def test_end_of_speech_after_hangover(mpy):
    out = mpy("""
from earshot.vad import EndOfSpeech
v = EndOfSpeech(35, 40, 200)
for _ in range(100):
    v.track(60)          # room noise sets the floor
v.reset()
ended = []
levels = [60] * 10 + [900] * 50 + [60] * 60
for i, lv in enumerate(levels):
    if v.update(lv):
        ended.append(i)
        break
print(ended)
v.reset()
n = 0
while not v.update(60):
    n += 1
print(n)
""")
    first, silent = out.splitlines()
    assert json.loads(first) == [60 + 35 - 1]  # 35 quiet frames after the speech
    assert int(silent) == 199  # nothing said: gives up after the no-speech limit


def test_settings_defaults_bad_file_bad_values_and_atomic_save(mpy, tmp_path):
    (tmp_path / "settings.json").write_text('{"gain_db": 99, "brightness": 100, "extra": [1], "wifi_password": "hunter2!"')
    out = mpy("""
from earshot import settings
s = settings.load()
print(s["gain_db"], s["brightness"])
""", cwd=tmp_path)
    assert "E settings unreadable file=settings.json" in out
    assert (tmp_path / "settings.json.bad").exists() and not (tmp_path / "settings.json").exists()
    assert out.splitlines()[-1] == "12 48"

    (tmp_path / "settings.json").write_text(json.dumps(
        {"gain_db": 99, "brightness": 100, "extra": [1], "wifi_password": 5}))
    out = mpy("""
from earshot import settings
s = settings.load()
print(s["gain_db"], s["brightness"])
s.save("muted", True)
""", cwd=tmp_path)
    assert "W settings invalid key=gain_db value=99 using=12" in out
    assert "W settings invalid key=wifi_password value=*** using=-" in out
    assert "W settings unknown key=extra" in out
    assert "12 100" in out
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved == {"gain_db": 99, "brightness": 100, "extra": [1], "wifi_password": 5, "muted": True}
    assert not (tmp_path / "settings.json.tmp").exists()


def test_settings_never_print_the_wifi_password(mpy, tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"wifi_password": "x" * 65}))
    out = mpy("from earshot import settings\nsettings.load()", cwd=tmp_path)
    assert "xxxx" not in out and "key=wifi_password value=***" in out


def test_audio_chunk_event_is_valid_wyoming(mpy):
    out = mpy("""
import binascii
from earshot.link import ChunkBuffer
c = ChunkBuffer()
from earshot.mic import FrameRing
ring = FrameRing(3)
ring.buf[320:640] = bytearray(range(256)) + bytearray(64)
for ts in (0, 20, 1234567890):
    print(binascii.hexlify(c.fill(ts, ring, 4)).decode())
""")
    for ts, hexline in zip((0, 20, 1234567890), out.split()):
        raw = bytes.fromhex(hexline)
        head, _, payload = raw.partition(b"\n")
        event = json.loads(head)
        assert event["type"] == "audio-chunk"
        assert event["data"] == {"rate": 16000, "width": 2, "channels": 1, "timestamp": ts}
        assert event["payload_length"] == len(payload) == 640
        assert payload == reference.unulaw(list(range(256)) + [0] * 64).astype("<i2").tobytes()  # decoded


@pytest.mark.parametrize("leds", [12, 16])
@pytest.mark.parametrize("brightness", [8, 48, 255])
def test_ring_patterns_keep_their_meaning_at_any_brightness(mpy, leds, brightness):
    out = mpy(f"""
from earshot import ring
class Pixels:
    def __init__(self, n): self.px = [(0, 0, 0)] * n
    def __len__(self): return len(self.px)
    def __setitem__(self, i, v): self.px[i] = v
    def write(self): print([list(p) for p in self.px])
r = ring.Ring(Pixels({leds}), {brightness})
for p in (ring.LISTENING, ring.MUTED, ring.DARK, ring.BOOT):
    r.show(p)
for _ in range({leds}):
    r.tick()
""")
    frames = json_lines(out)
    listening, muted, dark, boot = frames[:4]
    assert is_listening(listening) and not is_muted(listening)
    assert is_muted(muted) and not is_listening(muted)
    assert not is_listening(dark) and not any(any(p) for p in dark)
    assert not is_listening(boot)
    assert all(is_listening(f) for f in frames[4:])  # every spinner step


@pytest.mark.parametrize("content,message", [
    (None, "no pin map at board.json"),
    ("{not json", "is not valid JSON"),
    ('{"name": "x", "i2s": {"id": 0, "sck": 1, "ws": 2}, "ring": {"pin": 3, "leds": 12}, "button": {"pin": 0}}',
     "needs a non-negative integer for sd"),
])
def test_bad_pin_map_is_one_clear_error(mpy, tmp_path, content, message):
    if content is not None:
        (tmp_path / "board.json").write_text(content)
    out = mpy("""
from earshot import pinmap
try:
    pinmap.load()
except pinmap.PinMapError as e:
    print("error:", e)
""", cwd=tmp_path)
    assert out.startswith("error: ") and message in out


def test_every_shipped_board_map_loads(mpy, tmp_path):
    from host_tools.paths import BOARDS

    for path in sorted(BOARDS.glob("*.json")):
        (tmp_path / "board.json").write_text(path.read_text())
        out = mpy("from earshot import pinmap\nprint(pinmap.load()['name'])", cwd=tmp_path)
        assert out.strip() == path.stem


def test_slow_link_drops_oldest_frames_counts_them_and_keeps_order(mpy):
    # The capture keeps its pace while the link stalls: the send queue drops the oldest
    # frames, counts them, and what is sent stays in order with no duplicates.
    out = mpy("""
import asyncio, json
from earshot.mic import FrameRing
from earshot.link import ChunkBuffer, Session

ring = FrameRing(10)

class SlowLink:
    def __init__(self):
        self.stamps = []
        self.stall = True
        self.sending = asyncio.Lock()
    def write(self, data):
        head = bytes(data[:data.index(b"\\n")])
        ev = json.loads(head)
        if ev["type"] == "audio-chunk":
            self.stamps.append(ev["data"]["timestamp"])
    async def flush(self):
        if self.stall and len(self.stamps) >= 5:
            self.stall = False
            await asyncio.sleep_ms(300)  # 15 frames' worth: more than the queue holds
    async def send(self, data):
        self.write(data)
        await self.flush()

link = SlowLink()
end = [-1]

async def capture():
    for _ in range(60):
        ring.written += 1
        await asyncio.sleep_ms(20)
    end[0] = ring.written

async def main():
    asyncio.create_task(capture())
    await asyncio.sleep_ms(100)
    result = await Session(link, ring, ChunkBuffer()).stream(0, "button", lambda: end[0], {"preroll_ms": 0})
    print(json.dumps({"result": result, "stamps": link.stamps}))

asyncio.run(main())
""")
    [report] = json_lines(out)
    frames, dropped = report["result"]
    stamps = report["stamps"]
    assert dropped > 0
    assert stamps == sorted(set(stamps))  # in order, nothing twice
    assert len(stamps) + dropped == 60  # every frame either sent or counted as dropped
    assert stamps[-1] == 59 * 20


def test_a_ping_during_a_session_backlog_waits_its_turn(mpy):
    # A real socket with small buffers and a slow reader, as lwIP's send buffer on the
    # board: the session's pre-roll is still draining when the heartbeat sends its pings.
    # Every event arrives whole and the session ends (overlapping drains once hung it).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mpy("""
import asyncio, json
from earshot.mic import FrameRing
from earshot.link import ChunkBuffer, Session, Link, event

SO_SNDBUF, SO_RCVBUF, SOL_SOCKET = 7, 8, 1
ring = FrameRing(50)
ring.written = 50  # a second of pre-roll waiting to go
got = []
done = asyncio.Event()

async def slow_reader(r, w):
    r.s.setsockopt(SOL_SOCKET, SO_RCVBUF, 2048)
    while True:
        await asyncio.sleep_ms(10)
        data = await r.read(1024)
        if not data:
            break
        got.append(data)
    done.set()

def kinds(data):
    out, i = [], 0
    while i < len(data):
        j = data.index(b"\\n", i)
        ev = json.loads(data[i:j])
        out.append(ev["type"])
        i = j + 1 + ev.get("payload_length", 0)
    return out

async def main():
    await asyncio.start_server(slow_reader, "127.0.0.1", PORT)
    link = Link(None, "receiver", PORT, "dev", "fw", lambda up: None, lambda n: None)
    _, link._writer = await asyncio.open_connection("127.0.0.1", PORT)
    link._writer.s.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096)
    end = [-1]
    async def heartbeat():
        for _ in range(5):
            await asyncio.sleep_ms(1)
            await link.send(event("ping"))
        end[0] = ring.written
    pings = asyncio.create_task(heartbeat())
    session = Session(link, ring, ChunkBuffer()).stream(0, "button", lambda: end[0], {"preroll_ms": 1000})
    result = await asyncio.wait_for_ms(session, 5000)
    await pings
    await link._writer.wait_closed()  # (close() alone closes nothing in MicroPython)
    await asyncio.wait_for_ms(done.wait(), 5000)
    print(json.dumps({"result": result, "kinds": kinds(b"".join(got))}))

asyncio.run(main())
""".replace("PORT", str(port)))
    [report] = json_lines(out)
    kinds = report["kinds"]
    assert report["result"] == [50, 1]  # frame 0 was already overwritten: counted, not sent
    assert kinds.count("ping") == 5 and kinds.count("audio-chunk") == 49
    assert kinds[0] == "audio-start" and kinds[-1] == "audio-stop"


def test_a_receiver_line_is_refused_as_soon_as_it_outgrows_the_limit(mpy):
    # A paired receiver gone wrong sends a 100 KB line: the board stops reading it a little
    # past 1 KiB instead of holding it all in its heap; short lines, split or joined, come
    # through whole.
    out = mpy("""
import asyncio
from earshot.link import LineReader

class Stream:
    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.given = 0
    async def read(self, n):
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        self.given += len(chunk)
        return chunk

async def main():
    ok = LineReader(Stream([b'{"type":"po', b'ng"}\\n{"type":"pong"}\\n{"ty', b'pe"']))
    print(await ok.readline(), await ok.readline(), await ok.readline(), await ok.readline())
    flood = Stream([b"x" * 256] * 400 + [b"\\n"])
    try:
        await LineReader(flood).readline()
    except ValueError as e:
        print("refused", flood.given, e)

asyncio.run(main())
""")
    lines, refused = out.strip().splitlines()
    assert lines == """b'{"type":"pong"}\\n' b'{"type":"pong"}\\n' b'{"type"' b''"""
    assert refused.startswith("refused 1280 bad event from receiver: over 1024 bytes")
