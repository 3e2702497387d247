"""Private copies of files that share their inode with the artifact store.

Model files are hard links to the store's blobs (mode 0444) where that is safe: a replica that is not
root and does not own the blob cannot write through them. A replica that runs as root ignores the
mode, so it gets a copy of its own: a reflink where the file system has them (btrfs, XFS: no bytes
copied), else a full copy (ext4: about 1.6 s per GiB from the page cache, docs/security.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import stat
from pathlib import Path

__all__ = ["private_copy"]

_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def _reflink(source: Path, dest: Path) -> bool:
    with open(source, "rb") as src, open(dest, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:  # not supported here (ext4, tmpfs) or across file systems
            return False
    return True


def private_copy(path: Path) -> None:
    """Replace ``path`` by a copy with the same mode when other names share its inode (a hard link);
    a file with one link is left alone. The swap is atomic: readers see the old or the new file."""
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode) or st.st_nlink <= 1:
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.copy")
    try:
        if not _reflink(path, tmp):
            shutil.copyfile(path, tmp)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
