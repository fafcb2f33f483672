"""Child process for the Log crash tests (run as a script, then SIGKILLed).

    python crash_child.py DIR loop            append batches forever, print each size
    python crash_child.py DIR kill-at-sync N  SIGKILL itself at the N-th fdatasync
    python crash_child.py DIR torn-head K     SIGKILL itself half-way through the K-th HEAD write

Entries are a deterministic function of their index (see ``entry``), so the
parent can recompute the expected tree for any size.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys


def entry(i: int) -> bytes:
    return hashlib.sha256(b"entry %d" % i).digest()


def batch_size(k: int) -> int:
    return 700 + 37 * (k % 11)


def sizes(limit: int) -> list[int]:
    """Committed sizes after batches 0, 1, 2, ... up to ``limit``."""
    out, n, k = [0], 0, 0
    while n < limit:
        n += batch_size(k)
        k += 1
        out.append(n)
    return out


def main() -> None:
    from tocsin.engines.ledger.log import Log

    path, mode = sys.argv[1], sys.argv[2]
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    if mode == "kill-at-sync":
        real, count = os.fdatasync, [0]

        def fdatasync(fd: int) -> None:
            count[0] += 1
            if count[0] == arg:
                os.kill(os.getpid(), signal.SIGKILL)
            real(fd)

        os.fdatasync = fdatasync
    log = Log(path)
    if mode == "torn-head":
        real_pwrite, heads = os.pwrite, [0]
        head_fd = log._head_fd

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            if fd == head_fd:
                heads[0] += 1
                if heads[0] == arg:
                    real_pwrite(fd, data[:len(data) // 2], offset)
                    os.fdatasync(fd)
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_pwrite(fd, data, offset)

        os.pwrite = pwrite
    n = log.size
    k = sizes(n).index(n)  # resume on a batch boundary
    while True:
        b = batch_size(k)
        log.append_batch([entry(i) for i in range(n, n + b)])
        n += b
        k += 1
        print(n, flush=True)


if __name__ == "__main__":
    main()
