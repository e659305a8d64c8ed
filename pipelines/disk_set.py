"""A set of strings on disk: an sqlite table in a temporary directory (`TMPDIR`), so that sets of tens of
millions of keys (the URLs Wikipedia cites) take no memory to speak of. It lives for one run: no journal,
no syncing, one open transaction, the directory removed on close."""

from __future__ import annotations

import os
import sqlite3
import tempfile


class DiskSet:
    def __init__(self, prefix: str = "llamaprep-set-") -> None:
        self._directory = tempfile.TemporaryDirectory(prefix=prefix)
        self._db = sqlite3.connect(os.path.join(self._directory.name, "set.sqlite"), isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE items (key TEXT PRIMARY KEY) WITHOUT ROWID; BEGIN;"
        )

    def add(self, key: str) -> bool:
        """Add `key`; True when it was not there yet."""
        return bool(self._db.execute("INSERT OR IGNORE INTO items VALUES (?)", (key,)).rowcount)

    def __contains__(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM items WHERE key = ?", (key,)).fetchone() is not None

    def close(self) -> None:
        self._db.close()
        self._directory.cleanup()

    def __enter__(self) -> DiskSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
