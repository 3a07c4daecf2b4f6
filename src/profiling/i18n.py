"""What people read, in their language: message catalogues (gettext, through Babel).

The English text in the code and templates is the message id; ``locale/<language>/LC_MESSAGES/
profiling.po`` holds each language's translations (French, Spanish, Portuguese), read with
Babel and compiled in memory, so that nothing binary is kept in the repository. A message a
catalogue lacks is shown in English. :func:`environment` gives a Jinja environment whose
templates call ``_()`` (Jinja's i18n extension, new-style: its arguments are escaped).
So far the community validation sheets and form (:mod:`profiling.validation`), the settlement
profiles and the atlas index (:mod:`profiling.publish.atlas`: French complete but for the
city summary's definitions, Spanish and Portuguese for their headings) and the CUF's
explanations in ``cuf_priorities.csv`` and the map (:mod:`profiling.publish.maps`, its script
handed :data:`~profiling.publish.maps.MAP_MESSAGES` translated) have their catalogues; the
hazard overlays' legend rows and the PNG maps are still in English.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from importlib import resources
from typing import Any

#: The languages a configuration may name (``language:``), by code.
LANGUAGES = {"en": "English", "fr": "Français", "es": "Español", "pt": "Português"}


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of ``language`` (English: the messages as they are)."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalogue for the language {language!r}; one of "
                         f"{', '.join(LANGUAGES)}")
    if language == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    from babel.support import Translations

    po = resources.files("profiling") / "locale" / language / "LC_MESSAGES" / "profiling.po"
    catalog = read_po(io.BytesIO(po.read_bytes()), locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def english(message: str, **values: Any) -> str:
    """``_()`` for English: the message itself, its ``%(name)s`` filled (what
    :func:`gettext_for` gives for ``en``, without a catalogue to look in)."""
    return message % values if values else message


def gettext_for(language: str) -> Any:
    """``_(message, **values)`` in ``language``: the translation, its ``%(name)s`` filled."""
    t = translations(language)

    def _(message: str, **values: Any) -> str:
        text = t.gettext(message)
        return text % values if values else text

    return _


def environment(language: str) -> Any:
    """A Jinja environment of the package's templates, escaping, with ``_()`` in
    ``language``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("profiling", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True,
                             extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.globals["language"] = language
    return env
