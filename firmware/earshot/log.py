# One console line format for the whole firmware:
#   L module event key=value key=value
# L is D/I/W/E. `earshot monitor`, the simulator's plot and the tests parse it, so keep it
# stable. Values must not contain spaces (use value() for anything user-supplied).


def value(v):
    # A field value that keeps the line parseable.
    s = str(v)
    return s.replace(" ", "_") if s else "-"


class Logger:
    def __init__(self, module):
        self.module = module

    def _emit(self, level, event, fields):
        if fields:
            print(level, self.module, event, fields)
        else:
            print(level, self.module, event)

    def debug(self, event, fields=""):
        self._emit("D", event, fields)

    def info(self, event, fields=""):
        self._emit("I", event, fields)

    def warn(self, event, fields=""):
        self._emit("W", event, fields)

    def error(self, event, fields=""):
        self._emit("E", event, fields)
