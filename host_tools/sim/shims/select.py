# select on the virtual board: a wait of the event loop moves the audio clock instead of
# the wall clock, after giving real sockets a real moment to answer.
import _sim
from _builtin import builtin

_select = builtin("select")
POLLIN = _select.POLLIN
POLLOUT = _select.POLLOUT
POLLERR = _select.POLLERR
POLLHUP = _select.POLLHUP

_NET_GRACE_MS = 1  # real time a waiting socket gets per wait


class _Poll:
    def __init__(self):
        self._p = _select.poll()
        self._masks = {}  # registered object -> event mask

    def register(self, obj, mask=POLLIN | POLLOUT):
        self._p.register(obj, mask)
        self._masks[obj] = mask

    def unregister(self, obj):
        self._p.unregister(obj)
        self._masks.pop(obj, None)

    def modify(self, obj, mask):
        self._p.modify(obj, mask)
        self._masks[obj] = mask

    def _buffered(self):
        # TLS streams holding decrypted bytes are readable whatever their fd says (ssl.py).
        return [(o, POLLIN) for o, m in self._masks.items() if m & POLLIN and getattr(o, "buffered", False)]

    def poll(self, timeout=-1):
        return list(self.ipoll(timeout))

    def ipoll(self, timeout=-1, flags=0):
        buffered = self._buffered()
        if buffered:
            return buffered
        ready = self._p.ipoll(0, flags)
        if timeout == 0:
            return ready
        for _ in ready:
            return self._p.ipoll(0, flags)
        if self._masks:
            ready = self._p.ipoll(_NET_GRACE_MS, flags)
            for _ in ready:
                return self._p.ipoll(0, flags)
        if timeout < 0:
            timeout = 1000
        _sim.advance_to(_sim.samples + timeout * 16)
        return self._p.ipoll(0, flags)


def poll():
    return _Poll()
