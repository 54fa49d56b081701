# Imports the interpreter's own module (built in, or frozen like ssl) of a name that a shim
# of the same name shadows.
import sys


def builtin(name):
    saved = sys.path[:]
    sys.path[:] = [".frozen"]
    mine = sys.modules.pop(name, None)
    try:
        return __import__(name)
    finally:
        sys.path[:] = saved
        if mine is not None:
            sys.modules[name] = mine
        else:  # the shim is not loaded yet: keep the name free for it
            sys.modules.pop(name, None)
