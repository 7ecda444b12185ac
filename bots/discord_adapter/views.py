"""The buttons under a result (Export, Timeline, Credits) and a running reply (Cancel).

They are persistent: every button is a :class:`discord.ui.DynamicItem` whose
``custom_id`` (``nemo:<action>:<owner user id>``) carries all its state, and the
bot registers the class in ``setup_hook``, so a press is understood by any bot
process, including one started after the message was posted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import discord

from core.types import Action

from .texts import button_label

if TYPE_CHECKING:
    from .bot import DiscordBot

__all__ = ["ActionButton", "actions_view", "custom_id"]

_EMOJI: dict[Action, str] = {
    Action.EXPORT: "📤",
    Action.TIMELINE: "🎞️",
    Action.CREDITS: "💳",
    Action.CANCEL: "⏹️",
}

_STYLE = {Action.EXPORT: discord.ButtonStyle.primary, Action.CANCEL: discord.ButtonStyle.danger}


def custom_id(action: Action, owner_id: int) -> str:
    """The ``custom_id`` of ``action``'s button for ``owner_id``."""
    return f"nemo:{action.value}:{owner_id}"


class ActionButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"nemo:(?P<action>export|timeline|credits|cancel):(?P<owner>[0-9]{1,20})",
):
    """One action button; only its owner may press it."""

    def __init__(self, action: Action, owner_id: int, language: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=button_label(action.value, language),
                emoji=_EMOJI[action],
                style=_STYLE.get(action, discord.ButtonStyle.secondary),
                custom_id=custom_id(action, owner_id),
            )
        )
        self.action = action
        self.owner_id = owner_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> ActionButton:
        """Rebuild the button from a pressed ``custom_id`` (works across restarts)."""
        return cls(Action(match["action"]), int(match["owner"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the press to the bot, which checks the owner and asks the core."""
        bot = cast("DiscordBot", interaction.client)
        await bot.handle_action(interaction, self.action, self.owner_id)


def actions_view(
    actions: Sequence[Action], owner_id: int, language: str | None = None
) -> discord.ui.View | None:
    """A persistent view with one button per action, or ``None`` when there are none."""
    if not actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in dict.fromkeys(actions):
        view.add_item(ActionButton(action, owner_id, language))
    return view
