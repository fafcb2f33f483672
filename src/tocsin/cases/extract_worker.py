"""Child process: print the text of a PDF under a memory limit (see files.py)."""

from __future__ import annotations

import resource
import sys

MAX_PAGES = 2000


def main() -> int:
    path, max_text, memory = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (30, 30))
    import logging

    logging.disable(logging.CRITICAL)
    from pypdf import PdfReader

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            return 3
        out: list[str] = []
        total = 0
        for i, page in enumerate(reader.pages):
            if i >= MAX_PAGES or total >= max_text:
                break
            text = page.extract_text() or ""
            out.append(text)
            total += len(text)
    except MemoryError:
        return 4
    except Exception:  # noqa: BLE001 - any parser failure means "damaged"
        return 2
    sys.stdout.write("\n".join(out)[:max_text])
    return 0


if __name__ == "__main__":
    sys.exit(main())
