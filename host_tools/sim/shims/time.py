# time on the virtual board: the audio clock (see _sim.py). sleep moves the clock.
import _sim
from _builtin import builtin

_t = builtin("time")
ticks_diff = _t.ticks_diff
ticks_add = _t.ticks_add
gmtime = _t.gmtime
localtime = _t.localtime
mktime = _t.mktime



def ticks_ms():
    return _sim.samples // 16


def ticks_us():
    return _sim.samples * 125 // 2


def ticks_cpu():
    return ticks_us()


def time():
    return _sim.samples // _sim.RATE


def time_ns():
    return _sim.samples * 62500


def sleep_ms(ms):
    _sim.advance_to(_sim.samples + ms * 16)


def sleep_us(us):
    _sim.advance_to(_sim.samples + us * 16 // 1000)


def sleep(s):
    _sim.advance_to(_sim.samples + int(s * _sim.RATE))
