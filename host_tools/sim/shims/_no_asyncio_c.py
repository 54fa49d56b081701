# Stands in for MicroPython's C `_asyncio` module, which reads the wall clock directly.
# This module has no TaskQueue, so asyncio.core falls back to `asyncio.task`, which the
# simulator provides as _asyncio_task.py (see boot in _sim.py).
