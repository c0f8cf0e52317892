"""The message catalogue: UI text in English in the templates, shown in Swedish from ``messages/sv.po``.

Babel (the Pallets-era i18n library Flask-Babel is built on) reads the ``.po``
file and compiles it in memory when the app starts, so there is no build step
to forget and no compiled ``.mo`` in the tree. Templates use Jinja's i18n
extension (``{{ _("Sign in") }}``); views use :func:`gettext`.
"""

import io
import pathlib

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from flask import current_app

__all__ = ["DEFAULT_LOCALE", "catalogue", "translations", "install", "gettext"]

DEFAULT_LOCALE = "sv"
MESSAGES = pathlib.Path(__file__).with_name("messages")
_EXTENSION = "hemsync.web.translations"


def catalogue(locale=DEFAULT_LOCALE):
    """The Babel catalogue of ``locale`` as written in ``messages/<locale>.po``."""
    with open(MESSAGES / f"{locale}.po", "rb") as po:
        return read_po(po, locale=locale)


def translations(locale=DEFAULT_LOCALE):
    """The gettext translations of ``locale``, compiled in memory from its ``.po`` file."""
    compiled = io.BytesIO()
    write_mo(compiled, catalogue(locale))
    compiled.seek(0)
    return Translations(compiled)


def install(app, locale):
    """Give ``app``'s templates ``_()`` and ``ngettext()`` in ``locale``."""
    loaded = translations(locale)
    app.extensions[_EXTENSION] = loaded
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_translations(loaded, newstyle=True)


def gettext(message, **values):
    """``message`` in the app's language, with ``%(name)s`` placeholders filled from ``values``."""
    text = current_app.extensions[_EXTENSION].gettext(message)
    return text % values if values else text
