"""Writes that fail for lack of space say so (the path, the bytes needed and what is free, in one line),
and finished directories swapped into place.

Without this a full disk surfaces as whatever the writing library makes of ENOSPC (torch: "unexpected
pos 576 vs 534"; safetensors: "I/O error ... os error 27"), or not at all. Kept free of heavy imports:
the training process uses it too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class OutOfSpaceError(OSError):
    """A write that failed for lack of space or a file-size limit. The previous version is intact."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def space_errno(exc: BaseException) -> int | None:
    """ENOSPC, EFBIG or EDQUOT if `exc` (or what caused it) is a failed write for lack of space.

    torch.save reports the OSError only as the context of a RuntimeError, safetensors only in its
    message ("os error 27"), so the chain and the messages are both read."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in SPACE_ERRNOS:
            return exc.errno
        found = re.search(r"os error (\d+)|\[Errno (\d+)\]", str(exc))
        if found and int(found.group(1) or found.group(2)) in SPACE_ERRNOS:
            return int(found.group(1) or found.group(2))
        exc = exc.__cause__ or exc.__context__
    return None


def out_of_space_message(path: str, needed: int | None, code: int) -> str:
    why = "the file size limit (ulimit -f) was reached" if code == errno.EFBIG else "no space is left on the device"
    folder = os.path.dirname(path) or "."
    free = ""
    with contextlib.suppress(OSError):
        free = f", {shutil.disk_usage(folder).free:,} free there"
    size = f"needs about {needed:,} bytes{free}" if needed is not None else f"{free.lstrip(', ') or 'size unknown'}"
    return f"cannot write {path}: {why} ({size}). Free space or raise the limit, then run again; the previous version is intact."


@contextlib.contextmanager
def space_guard(path: str | os.PathLike, needed: int | None = None) -> Iterator[None]:
    """Turn a write that fails for lack of space into an `OutOfSpaceError` naming the path and the bytes needed."""
    try:
        yield
    except OutOfSpaceError:
        raise
    except Exception as exc:
        code = space_errno(exc)
        if code is None:
            raise
        raise OutOfSpaceError(code, out_of_space_message(str(path), needed, code)) from exc


def replace_dir(tmp: Path, target: Path) -> None:
    """Swap a finished directory into place (two renames; the old one is deleted after)."""
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
