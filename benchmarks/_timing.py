"""Timing helper shared by the benchmark scripts (``python benchmarks/<name>.py``)."""
import time


def timings(fn, repeat, clock=time.perf_counter):
    """Seconds taken by each of ``repeat`` calls of ``fn``, by ``clock`` (wall time by default;
    ``time.process_time`` for process CPU time)."""
    out = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out
