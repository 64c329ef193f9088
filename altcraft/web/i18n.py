"""English and Russian: Babel message catalogues (translations/<lang>/LC_MESSAGES/messages.po).

The .po files are the source and are compiled in memory when the app is made, so a fresh
clone and the wheel work alike with no build step. The language is the signed-in user's
setting (users.lang), else the browser's preference.
"""

from __future__ import annotations

import gettext
import io
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import g, request

from altcraft.domain.users import LANGS

CATALOGUES = Path(__file__).with_name("translations")
DEFAULT = "en"


@lru_cache(maxsize=None)
def translations(lang: str) -> gettext.NullTranslations:
    path = CATALOGUES / lang / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def choose(user: dict | None) -> str:
    if user and user.get("lang") in LANGS:
        return user["lang"]
    return request.accept_languages.best_match(LANGS) or DEFAULT


def current() -> str:
    return g.get("lang", DEFAULT)


def gettext_(message: str, **variables) -> str:
    text = translations(current()).gettext(message)
    return text % variables if variables else text


def ngettext_(singular: str, plural: str, n: int, **variables) -> str:
    text = translations(current()).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def datetime_filter(value: datetime | None, tz: str | None = None) -> str:
    """A stored (UTC) time in the account's time zone and the user's language."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return format_datetime(value, "short", tzinfo=ZoneInfo(tz or "UTC"), locale=current())
