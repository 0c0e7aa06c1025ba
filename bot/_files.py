"""Files with clients' data in them: written owner-only, whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only (0600).

    The text goes to a new file in the same folder that is owner-only from the moment it
    exists, and then replaces `path`: an existing file's wider mode is never inherited, a
    symlink at `path` is replaced rather than followed, and a reader never sees half a file.

    Raises:
        OSError: The folder does not exist, is not writable, or `path` is a folder.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
