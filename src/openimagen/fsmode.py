"""The permissions of the files openimagen writes.

Every file is written through a temporary file and renamed into place; ``tempfile.mkstemp`` creates that file
readable by its owner alone (0600), so it is given :data:`FILE_MODE` before the rename: what ``open()`` would
have given a new file, 0o666 less the process umask (read once, when openimagen is imported).
"""
import os


def _file_mode() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()
