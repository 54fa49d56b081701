# The board's wake decision (firmware/earshot/detector.py) replayed on the host over a
# track of model outputs, for sweeps over many cutoffs. After every 10 ms feature slice:
#   fire when the sum of the last `window` outputs > cutoff x window,
# then zero the outputs and rest until REST slices whose latest output is below the
# cutoff have passed (the board also rests from its start). The model runs once per
# `stride` slices: output k arrives with slice stride x k + stride - 1. A test checks this
# equals the firmware's own detections.
import numpy as np

REST = 100  # slices (1 s): ESPHome's MIN_SLICES_BEFORE_DETECTION
STRIDE = 3
SLICE_S = 0.01
FIRST_SLICE_S = 0.03  # slice j ends at FIRST_SLICE_S + j x SLICE_S of the audio


def detections(outputs, cutoff, window, stride=STRIDE, rest=REST):
    """Slice indices where the board fires, for `outputs` (uint8, one per invocation)."""
    if window * stride > rest:
        raise ValueError("the rest must outlast the window")  # the shortcut below relies on it
    out = np.asarray(outputs, np.int64)
    n, bar = len(out), cutoff * window
    csum = np.concatenate([[0], np.cumsum(out)])
    k = np.arange(n)
    hot = np.nonzero(csum[k + 1] - csum[np.maximum(k + 1 - window, 0)] > bar)[0]
    fired, j = [], 0
    while True:
        j = _rest_from(out, j, cutoff, window, stride, rest)  # first slice that may fire, or None
        if j is None:
            return fired
        # Once rested, the window holds real outputs again and only an invocation moves it.
        if _sum_at(out, j, window, stride) <= bar:
            i = np.searchsorted(hot, (j + 1) // stride)  # invocations whose slice is after j
            if i == len(hot):
                return fired
            j = stride * int(hot[i]) + stride - 1
        fired.append(j)
        j += 1


def _rest_from(out, j, cutoff, window, stride, rest):
    # Slice by slice from slice j with zeroed outputs: the slice at which the rest ends.
    latest, ignore = 0, -rest
    while True:
        if j % stride == stride - 1:
            if j // stride >= len(out):
                return None
            latest = int(out[j // stride])
        if latest < cutoff:
            ignore += 1
            if ignore == 0:
                return j
        j += 1


def _sum_at(out, j, window, stride):
    k = (j - stride + 1) // stride  # the latest invocation at slice j
    return int(out[max(0, k - window + 1):k + 1].sum()) if k >= 0 else 0


def slice_end_s(j):
    return FIRST_SLICE_S + j * SLICE_S
