"""Small helpers shared by the benchmark scripts: a fixed-memory latency histogram and CPU
readings from /proc (no third-party packages).

``Histogram`` keeps counts in 10 µs bins up to 100 ms, then 1 ms bins up to 10 s, plus an
overflow bin and the exact maximum: recording costs one ``int()`` and a list increment, memory
stays constant whatever the run length, and histograms from several processes merge by adding.
Percentiles are read at bin resolution (10 µs below 100 ms).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["Histogram", "proc_cpu_seconds", "system_cpu_seconds", "CLK_TCK"]

_FINE_S = 1e-5  # 10 µs bins ...
_FINE_N = 10_000  # ... up to 100 ms
_COARSE_S = 1e-3  # then 1 ms bins ...
_COARSE_N = 9_900  # ... up to 10 s
_FINE_TOP = _FINE_S * _FINE_N


class Histogram:
    """Latency histogram (values in seconds; negative values count as 0)."""

    __slots__ = ("counts", "n", "total", "max")

    def __init__(self) -> None:
        self.counts = [0] * (_FINE_N + _COARSE_N + 1)
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        if value < 0.0:
            value = 0.0
        if value < _FINE_TOP:
            i = int(value / _FINE_S)
        else:
            i = _FINE_N + int((value - _FINE_TOP) / _COARSE_S)
            if i > _FINE_N + _COARSE_N:
                i = _FINE_N + _COARSE_N
        self.counts[i] += 1
        self.n += 1
        self.total += value
        if value > self.max:
            self.max = value

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)

    @staticmethod
    def _upper(i: int) -> float:
        """Upper edge of bin ``i`` (percentiles are reported conservatively)."""
        if i < _FINE_N:
            return (i + 1) * _FINE_S
        return _FINE_TOP + (i - _FINE_N + 1) * _COARSE_S

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in seconds, or None when empty."""
        if self.n == 0:
            return None
        rank = max(1, int(-(-self.n * q // 100)))  # ceil(n*q/100), at least 1
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(self._upper(i), self.max)
        return self.max

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "total": self.total,
            "max": self.max,
            "bins": {str(i): c for i, c in enumerate(self.counts) if c},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Histogram:
        h = cls()
        h.n = int(doc["n"])
        h.total = float(doc["total"])
        h.max = float(doc["max"])
        for i, c in doc["bins"].items():
            h.counts[int(i)] = int(c)
        return h

    def summary_ms(self) -> dict[str, float | int | None]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 3)

        return {
            "n": self.n,
            "p50_ms": ms(self.percentile(50)),
            "p99_ms": ms(self.percentile(99)),
            "p999_ms": ms(self.percentile(99.9)),
            "max_ms": ms(self.max if self.n else None),
            "mean_ms": ms(self.mean),
        }


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_cpu_seconds() -> float:
    """CPU seconds spent by the whole machine in non-idle states (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    values = [int(v) for v in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / CLK_TCK
