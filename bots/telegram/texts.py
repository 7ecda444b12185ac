"""The few texts the Telegram adapter says itself, from the ``[telegram]`` tables of the catalogue.

Everything else (welcome, help, refusals, progress) is the core's to say; these
are only the answers the adapter gives *before* a message reaches the core:
a file that is too big or of the wrong kind, a button pressed by someone who
doesn't own the project, the last-resort apology of the error handler, the
button labels and the command menu (see ``core/locales/<lang>.toml``).
"""

from __future__ import annotations

from core.files import accepted_formats
from core.i18n import t
from core.language import SUPPORTED

__all__ = ["COMMANDS", "FORMATS", "text"]

FORMATS = accepted_formats(upper=True)

# The menu's commands, in menu order.
_MENU = ("start", "help", "new", "status", "credits", "export", "cancel", "projects", "resend")

#: Bot menu commands for each language, set with setMyCommands at start-up (English
#: is the default menu; the others are registered for their language code).
COMMANDS: dict[str, list[tuple[str, str]]] = {
    language: [(name, t(f"telegram.commands.{name}", language)) for name in _MENU]
    for language in SUPPORTED
}


def text(key: str, language: str | None, **values: object) -> str:
    """The adapter text ``key`` in the user's language, with ``values`` filled in."""
    return t(f"telegram.{key}", language, formats=FORMATS, **values)
