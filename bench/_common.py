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


def files_under(paths: list[Path]) -> list[Path]:
    """The files named, and the files under the directories named."""
    return [f for root in paths
            for f in ([root] if root.is_file() else sorted(root.rglob("*"))) if f.is_file()]


def prewarm(paths: list[Path]) -> int:
    """Read files (and the files under directories) once, so that every system starts with
    its data in the page cache, as on a server with the memory for it. Returns bytes read."""
    total = 0
    for f in files_under(paths):
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


class MemoryLock:
    """Files mapped and locked in memory (mmap + mlock) until ``release``: their pages stay
    in the page cache for the whole run, whatever the kernel's reclaim. Some virtual
    machines page out memory left untouched for a minute (DAMON ``pageout``), so a prewarm
    alone does not keep a dataset of gigabytes in memory; a server with the memory for it
    would. Pages a file gains after locking are not locked."""

    def __init__(self, paths: list[Path]) -> None:
        import ctypes
        import mmap
        import os

        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.mmap.restype = ctypes.c_void_p
        self._libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                                    ctypes.c_int, ctypes.c_int, ctypes.c_long]
        self._libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self._maps: list[tuple[int, int]] = []
        self.locked = 0
        for f in files_under(paths):
            try:
                fd = os.open(f, os.O_RDONLY)
            except OSError:
                continue
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    continue
                addr = self._libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
                if addr in (None, ctypes.c_void_p(-1).value):
                    continue
                self._maps.append((addr, size))
                if self._libc.mlock(ctypes.c_void_p(addr), size) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"mlock {f}: {os.strerror(err)} (needs "
                                       "CAP_IPC_LOCK or a large RLIMIT_MEMLOCK)")
                self.locked += size
            finally:
                os.close(fd)

    def release(self) -> None:
        for addr, size in self._maps:
            self._libc.munmap(addr, size)
        self._maps.clear()


class GcPauses:
    """The time the garbage collector ran, per generation, while installed (gc.callbacks):
    ``total`` read before and after a timed call says how much of it was collection."""

    def __init__(self) -> None:
        import gc
        import time

        self.total = 0.0
        self.by_generation = [0, 0, 0]
        self._started = 0.0
        self._clock = time.perf_counter

        def callback(phase: str, info: dict) -> None:
            if phase == "start":
                self._started = self._clock()
            else:
                self.total += self._clock() - self._started
                self.by_generation[info["generation"]] += 1

        self._callback = callback
        gc.callbacks.append(callback)

    def close(self) -> None:
        import gc

        gc.callbacks.remove(self._callback)


def settle_heap() -> int:
    """Collect, then move every object alive into the permanent generation (gc.freeze), as a
    server does once started: the benchmark's own data (generated pools, expected results)
    then costs no collection pauses inside the timed calls. Returns the objects frozen."""
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class FsyncProbe:
    """A 4 KiB overwrite and fdatasync of a file beside the database, timed: run between
    the timed calls, it shows what the disk's own flushes cost at that moment, the floor
    under any durable commit (a SQLite commit with synchronous=FULL is one such flush)."""

    def __init__(self, directory: Path) -> None:
        import os

        self.path = Path(directory) / "fsync-probe.bin"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self._fd, b"\0" * 4096, 0)
        os.fsync(self._fd)
        self._block = os.urandom(4096)
        self.times: list[float] = []

    def probe(self) -> float:
        import os
        import time

        os.pwrite(self._fd, self._block, 0)
        t0 = time.perf_counter()
        os.fdatasync(self._fd)
        took = time.perf_counter() - t0
        self.times.append(took)
        return took

    def close(self) -> None:
        import os

        os.close(self._fd)
        self.path.unlink(missing_ok=True)
