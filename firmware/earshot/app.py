# The state machine that ties the board together. One `_set_state()` changes state, logs
# `old -> new` and paints the ring, so the ring can never disagree with the state.
#
#   boot -> idle | muted | offline
#   idle --short press / wake word--> streaming --end of speech / max length / press--> idle
#   any --long press--> muted --long press--> idle | offline
#   idle <-> offline as the receiver link comes and goes
import asyncio

import time
from micropython import const

from earshot import button as buttons
from earshot import ring as rings
from earshot.log import Logger, value
from earshot.mic import FRAME_MS

_BOOT = const(0)
_IDLE = const(1)
_STREAMING = const(2)
_MUTED = const(3)
_OFFLINE = const(4)

_NAMES = ("boot", "idle", "streaming", "muted", "offline")
_RING = (rings.BOOT, rings.DARK, rings.LISTENING, rings.MUTED, rings.PROBLEM)

_BUTTON_POLL_MS = const(20)
_SPIN_MS = const(100)

_log = Logger("app")


class NoDetector:
    # The wake-word detector when there is none (no model, or none that fits): push-to-talk
    # only. WakeDetector (detector.py) has the same interface.
    name = "none"
    score = 0

    def process(self, buf, at):
        return False

    def reset(self):
        pass


class App:
    def __init__(self, hw, settings, mic, ring, link, session, detector, vad):
        self._hw = hw
        self._settings = settings
        self._mic = mic
        self._ring = ring
        self._link = link
        self._session = session
        self._detector = detector
        self._vad = vad
        self._button = buttons.Button()
        self._max_frames = settings["max_session_s"] * 1000 // FRAME_MS
        self._preroll_frames = settings["preroll_ms"] // FRAME_MS
        self.state = _BOOT
        self._end = -1  # end frame of the streaming session, -1 while it runs
        self._start = 0
        self._task = None

    def _set_state(self, new, why):
        old = self.state
        if new == old:
            return
        self.state = new
        self._ring.show(_RING[new])  # before anything is sent: lit before sent (P2)
        _log.info("state", "old=" + _NAMES[old] + " new=" + _NAMES[new] + " why=" + why)
        self._link.report(_NAMES[new])  # the receiver's web page shows it

    # Events -----------------------------------------------------------------------------

    def on_link(self, up):
        # Called on every connection attempt's outcome.
        if self.state in (_BOOT, _IDLE) and not up:
            self._set_state(_OFFLINE, "receiver_unreachable")
        elif self.state in (_BOOT, _OFFLINE) and up:
            self._set_state(_IDLE, "receiver_up")

    def on_reject(self, session):
        # The receiver did not hear the wake phrase in the pre-roll (P6): send no more
        # audio; the ring goes dark once audio-stop has left.
        if self.state == _STREAMING and self._task is not None and session == self._session.number:
            self._end = 0
            _log.info("session_end", "why=rejected_by_receiver")

    def on_press(self, kind):
        s = self.state
        if kind == buttons.LONG:
            if s == _MUTED:
                self._unmute()
            else:
                self._mute()
        elif s == _IDLE:
            self._start_session("button")
        elif s == _STREAMING:
            self._finish("button")
        else:
            _log.info("press_ignored", "state=" + _NAMES[s])

    def on_frame(self, frame):
        # Runs after every captured frame (16-bit PCM): the listening
        # loop's decisions. No allocation here while idle (tests check under heap_lock).
        level = self._mic.level
        woke = self._detector.process(frame, 0)
        if self.state == _STREAMING:
            if self._end < 0:
                n = self._mic.ring.written - self._start
                if self._vad.update(level):
                    self._finish("end_of_speech")
                elif n >= self._preroll_frames + self._max_frames:
                    self._finish("max_length")
        else:
            self._vad.track(level)
            if woke and self.state == _IDLE:
                self._start_session("wake")  # the ring first; then the log line
                _log.info("wake", "score=" + str(self._detector.score))

    # Actions ----------------------------------------------------------------------------

    def _start_session(self, trigger):
        written = self._mic.ring.written
        self._start = max(self._mic.ring.oldest(), written - self._preroll_frames)
        self._end = -1
        self._vad.reset()
        self._set_state(_STREAMING, trigger)
        about = {"preroll_ms": (written - self._start) * FRAME_MS}
        if trigger == "wake":
            about["phrase"] = self._detector.model.phrase
        self._task = asyncio.create_task(self._stream(trigger, about))

    def _finish(self, why):
        self._end = self._mic.ring.written
        _log.info("session_end", "why=" + why)

    async def _stream(self, trigger, about):
        ok = False
        try:
            frames, dropped = await self._session.stream(self._start, trigger, self._end_frame, about)
            _log.info("session_sent", "frames=" + str(frames) + " dropped=" + str(dropped))
            ok = True
        except OSError as e:
            _log.warn("session_failed", "error=" + value(e))
            self._link.drop()  # a connection that failed a send is not trusted again: reconnect now
        finally:
            self._task = None
            if self.state == _STREAMING:  # after the last byte: lit until then (P2)
                self._set_state(_IDLE if ok and self._link.up else _OFFLINE, "session_over")

    def _end_frame(self):
        return self._end

    def _mute(self):
        self._mic.stop()  # first: the mic clock stops before anything else happens (P3)
        if self._task is not None:
            # Cut the session mid-stream: cancel the sender and drop the connection, so
            # no buffered audio can leave once the ring is no longer blue.
            self._task.cancel()
            self._task = None
            self._link.drop()
        self._set_state(_MUTED, "long_press")
        self._settings.save("muted", True)

    def _unmute(self):
        # The ring leaves red first: red must always mean the mic is off.
        self._set_state(_IDLE if self._link.up else _OFFLINE, "long_press")
        self._detector.reset()  # nothing heard before the mute may complete a phrase
        self._mic.start()
        self._settings.save("muted", False)

    # Tasks ------------------------------------------------------------------------------

    async def _listen(self):
        mic = self._mic
        while True:
            if mic.on:
                self.on_frame(mic.capture())
                await asyncio.sleep_ms(0)
            else:
                await asyncio.sleep_ms(FRAME_MS)

    async def _watch_button(self):
        hw, btn = self._hw, self._button
        while True:
            kind = btn.update(hw.button_pressed(), time.ticks_ms())
            if kind:
                self.on_press(kind)
            await asyncio.sleep_ms(_BUTTON_POLL_MS)

    async def _spin_ring(self):
        while True:
            await asyncio.sleep_ms(_SPIN_MS)
            self._ring.tick()

    async def run(self):
        self._ring.show(rings.BOOT)
        if self._settings["muted"]:
            self._set_state(_MUTED, "saved_mute")
        else:
            self._mic.start()
        tasks = [asyncio.create_task(t) for t in
                 (self._listen(), self._watch_button(), self._spin_ring(), self._link.run())]
        await asyncio.gather(*tasks)

    def deinit(self):
        self._mic.stop()
        self._link.deinit()
        self._hw.deinit()
