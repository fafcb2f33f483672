"""What several benchmarks share: percentiles, the page cache, storage reads.

Imported as ``_common`` by the scripts of this folder (run as ``python bench/X.py``,
which puts the folder first on the path)."""

from __future__ import annotations

from pathlib import Path


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0..1) of ``values``, in their unit; NaN if empty."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def prewarm(paths: list[Path]) -> int:
    """Read files (and the files under directories) once, so that every system starts with
    its data in the page cache, as on a server with the memory for it. Returns bytes read."""
    total = 0
    for root in paths:
        files = [root] if root.is_file() else [f for f in root.rglob("*") if f.is_file()]
        for f in files:
            try:
                with open(f, "rb", buffering=0) as fh:
                    while chunk := fh.read(8 << 20):
                        total += len(chunk)
            except OSError:  # a file of a live server that went away, or one we may not read
                continue
    return total


def storage_read_bytes() -> int:
    """Bytes this process has read from storage (page-cache misses), per /proc; 0 elsewhere.
    A timed call during which it did not grow read nothing but memory."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("read_bytes"))
    except (OSError, StopIteration):
        return 0
