# asyncio's task queue and Task for the virtual board, in Python. MicroPython's C
# `_asyncio` reads the wall clock itself; with this module in its place the scheduler
# keys every task by time.ticks_ms(), which here is the audio clock. Same interface as
# the board's: TaskQueue.peek/push/pop/remove and Task with state/data/ph_key/cancel.
core = None  # asyncio.core, set by boot.py once asyncio is imported (it imports us)


class TaskQueue:
    # A list ordered by wake-up time; equal times keep their push order. The board's
    # queues hold a handful of tasks, so a list beats a heap here.
    def __init__(self):
        self._items = []

    def peek(self):
        return self._items[0] if self._items else None

    def push(self, task, key=None):
        task.data = None
        task.ph_key = core.ticks() if key is None else key
        items = self._items
        lo, hi = 0, len(items)
        while lo < hi:
            mid = (lo + hi) // 2
            if core.ticks_diff(items[mid].ph_key, task.ph_key) <= 0:
                lo = mid + 1
            else:
                hi = mid
        items.insert(lo, task)

    def pop(self):
        return self._items.pop(0)

    def remove(self, task):
        self._items.remove(task)


class Task:
    def __init__(self, coro, globals=None):
        self.coro = coro
        self.data = None  # what the task waits on, or its result / exception when done
        self.state = True  # True: running; a TaskQueue: tasks awaiting it; falsy: done
        self.ph_key = 0

    def __iter__(self):
        if not self.state:
            self.state = False  # done, and now awaited
        elif self.state is True:
            self.state = TaskQueue()
        elif type(self.state) is not TaskQueue:
            raise RuntimeError("can't wait")
        return self

    def __next__(self):
        if not self.state:
            raise self.data
        self.state.push(core.cur_task)
        core.cur_task.data = self

    def done(self):
        return not self.state

    def cancel(self):
        if not self.state:
            return False
        if self is core.cur_task:
            raise RuntimeError("can't cancel self")
        target = self
        while isinstance(target.data, Task):  # cancel what it waits on
            target = target.data
        if hasattr(target.data, "remove"):
            target.data.remove(target)
            core._task_queue.push(target)
        elif core.ticks_diff(target.ph_key, core.ticks()) > 0:
            core._task_queue.remove(target)
            core._task_queue.push(target)
        target.data = core.CancelledError
        return True
