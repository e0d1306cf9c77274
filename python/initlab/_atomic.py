"""Crash-safe file output: a target path holds either the old file untouched or the complete new one.

Used by :func:`initlab.fill_file` and :func:`initlab.dask.to_npy`. The new file is written under
a hidden temporary name in the target's own directory (so the final ``os.replace`` is an atomic
rename on the same file system), its data are synced, then it is renamed over the target and the
directory entry is synced. Anything that goes wrong before the rename (an exception, Ctrl-C, a
full disk, a file-size limit) removes the temporary file and leaves the target as it was. A
process killed outright (SIGKILL, power loss) can leave the hidden temporary file behind, never a
partial file under the target's name.

Before anything is created the target is checked: a path that exists and is not a regular file
(a directory, a FIFO, a device, a socket) is refused with ``ValueError`` without being opened
(so a FIFO never blocks), and the size is compared with the free space of the file system and
with the process's file-size limit (``RLIMIT_FSIZE``) where the platform reports them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from typing import Iterator

__all__ = ["check_target", "check_space", "temp_name", "replace_into", "atomic_output", "remove_quietly"]

_TMP_TAG = ".initlab-tmp-"
# Leave this much free beyond the file itself (file-system metadata, other writers).
_SPACE_MARGIN = 1 << 20


def check_target(path: str | os.PathLike) -> str:
    """The path to write (symbolic links resolved, so a link keeps pointing at the new file).

    Raises ``ValueError`` for an existing path that is not a regular file, ``FileNotFoundError``
    when its directory does not exist. Nothing is opened.
    """
    path = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise ValueError(f"cannot write to {path!r}: it is {kind}; give the path of a regular file (new or existing)")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise FileNotFoundError(errno.ENOENT, f"the directory of {path!r} does not exist", parent)
    return path


def check_space(path: str, nbytes: int) -> None:
    """Refuse a file of ``nbytes`` bytes that cannot fit: more than the largest file size the
    platform can address (``ValueError``), above ``RLIMIT_FSIZE`` or the free space of the file
    system (``OSError`` with ``EFBIG``/``ENOSPC``). Checks the platform cannot make are skipped."""
    if nbytes > (1 << 63) - 1:
        raise ValueError(f"a file of {nbytes} bytes is larger than any file this platform can address (2**63 - 1)")
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft != resource.RLIM_INFINITY and nbytes > soft:
            raise OSError(errno.EFBIG, f"the file would be {nbytes} bytes, above this process's file-size limit "
                          f"(RLIMIT_FSIZE = {soft} bytes)", path)
    except (ImportError, ValueError, AttributeError):  # no resource module (Windows)
        pass
    try:
        free = shutil.disk_usage(os.path.dirname(path) or ".").free
    except OSError:
        return
    # The old file stays until the rename, so its space does not count as free.
    if nbytes + _SPACE_MARGIN > free:
        raise OSError(errno.ENOSPC, f"not enough free space for a file of {nbytes / 2**30:.3g} GiB "
                      f"({nbytes} bytes): {free} bytes free on the file system", path)


def temp_name(path: str) -> str:
    """A fresh hidden name beside ``path`` (same directory, hence same file system)."""
    d, base = os.path.split(path)
    return os.path.join(d, f".{base}{_TMP_TAG}{os.getpid()}-{secrets.token_hex(6)}")


def remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _sync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_into(tmp: str, path: str) -> None:
    """Sync ``tmp``, give it the permissions of the file it replaces, rename it over ``path``."""
    fd = os.open(tmp, os.O_RDWR)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _sync_dir(path)


def preallocate(fd: int, nbytes: int) -> None:
    """Reserve the blocks of the file now, so a full disk fails here and never in the middle of
    the writes (or as SIGBUS through a memory map). File systems that cannot are skipped."""
    if nbytes and hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
                raise


@contextlib.contextmanager
def atomic_output(path: str, nbytes: int) -> Iterator[int]:
    """Yield a file descriptor of a new temporary file beside ``path``, preallocated to ``nbytes``;
    on normal exit sync it and rename it over ``path``, on any exception (KeyboardInterrupt
    included) remove it and leave ``path`` untouched."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            preallocate(fd, nbytes)
            yield fd
        finally:
            os.close(fd)
        replace_into(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
