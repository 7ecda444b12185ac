"""Which export progress messages show their owner's Cancel button, one registry per bot.

A cancel (typed, the /cancel command, or the button pressed) is answered by a
replier of its own, not by the one following the export; this is how it finds
the progress message whose Cancel has nothing left to stop once the cancel is
done. Keys are ``(channel id, owner id)``: the conversation the export belongs
to (wherever the message itself ended up, e.g. a DM when the channel refused it).
"""

from __future__ import annotations

from .editable import EditableMessage

__all__ = ["Progresses", "unbutton"]

ProgressKey = tuple[int, int]


class Progresses:
    """The progress messages showing Cancel, by ``(channel id, owner id)``."""

    def __init__(self) -> None:
        self._shown: dict[ProgressKey, EditableMessage] = {}

    def add(self, key: ProgressKey, message: EditableMessage) -> None:
        """``message`` shows Cancel for the owner in ``key``."""
        self._shown[key] = message

    def discard(self, key: ProgressKey, message: EditableMessage) -> None:
        """``message`` no longer shows Cancel (its export ended); a newer one stays."""
        if self._shown.get(key) is message:
            del self._shown[key]

    def take(self, key: ProgressKey) -> EditableMessage | None:
        """The progress message showing Cancel for ``key``, forgotten here."""
        return self._shown.pop(key, None)


async def unbutton(message: EditableMessage, content: str | None = None) -> bool:
    """Take the buttons off ``message`` (optionally showing ``content``); whether it worked.

    Never raises: a failed edit is logged by :class:`EditableMessage`. The edit is
    tried even when the message's interaction token is past the time the adapter
    relies on it (14 of Discord's 15 minutes): that last minute is what lets a
    progress message that is handed over to the channel lose its Cancel. Past
    Discord's limit it is not tried (a refused token only spends the bot's quota
    of invalid requests).
    """
    if not message.reachable():
        return False
    return await message.final(content, view=None)
