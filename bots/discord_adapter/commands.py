"""The slash commands. Each one defers first, then hands the request to the bot.

Descriptions come from the catalogue's ``[discord.commands]`` table as
``locale_str`` (English, keyed), so :class:`~.texts.NemoTranslator` can add every
other language's text when the tree syncs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import discord
from discord import app_commands

from core.types import Intent

from .texts import command_text as _

if TYPE_CHECKING:
    from .bot import DiscordBot

__all__ = ["build_commands"]


def _bot(interaction: discord.Interaction) -> DiscordBot:
    return cast("DiscordBot", interaction.client)


def build_commands() -> list[app_commands.Command[Any, ..., None]]:
    """Fresh command objects for one bot's tree (so several bots never share state)."""

    @app_commands.command(name="video", description=_("video"))
    @app_commands.describe(
        prompt=_("video_prompt"),
        image=_("video_image"),
        clip=_("video_clip"),
    )
    async def video(
        interaction: discord.Interaction,
        prompt: str,
        image: discord.Attachment | None = None,
        clip: discord.Attachment | None = None,
    ) -> None:
        """Generate or edit a video."""
        files = [a for a in (image, clip) if a is not None]
        # With files the core uploads them first, then sends the prompt.
        await _bot(interaction).run_command(
            interaction,
            text=prompt,
            intent=Intent.UPLOAD if files else Intent.CHAT,
            attachments=files,
        )

    @app_commands.command(name="upload", description=_("upload"))
    @app_commands.describe(file=_("upload_file"), note=_("upload_note"))
    async def upload(
        interaction: discord.Interaction, file: discord.Attachment, note: str | None = None
    ) -> None:
        """Upload one file to the session."""
        await _bot(interaction).run_command(
            interaction, text=note or "", intent=Intent.UPLOAD, attachments=[file]
        )

    @app_commands.command(name="export", description=_("export"))
    async def export(interaction: discord.Interaction) -> None:
        """Render and deliver the current video."""
        await _bot(interaction).run_command(interaction, text="export", intent=Intent.EXPORT)

    @app_commands.command(name="status", description=_("status"))
    async def status(interaction: discord.Interaction) -> None:
        """Show the session's state."""
        await _bot(interaction).run_command(interaction, text="status", intent=Intent.STATUS)

    @app_commands.command(name="credits", description=_("credits"))
    async def credits(interaction: discord.Interaction) -> None:
        """Show the user's credits, to them only."""
        await _bot(interaction).run_command(
            interaction, text="credits", intent=Intent.CREDITS, ephemeral=True
        )

    @app_commands.command(name="new", description=_("new"))
    async def new(interaction: discord.Interaction) -> None:
        """Start a fresh session."""
        await _bot(interaction).run_command(interaction, text="new", intent=Intent.NEW)

    @app_commands.command(name="cancel", description=_("cancel"))
    async def cancel(interaction: discord.Interaction) -> None:
        """Stop the running request, the waiting ones and an export."""
        await _bot(interaction).run_command(interaction, text="cancel", intent=Intent.CANCEL)

    @app_commands.command(name="help", description=_("help"))
    async def help_(interaction: discord.Interaction) -> None:
        """Explain the bot, to the asker only."""
        await _bot(interaction).run_command(
            interaction, text="help", intent=Intent.HELP, ephemeral=True
        )

    @app_commands.command(name="projects", description=_("projects"))
    async def projects(interaction: discord.Interaction) -> None:
        """List the user's recent projects, to them only."""
        await _bot(interaction).run_command(
            interaction, text="projects", intent=Intent.PROJECTS, ephemeral=True
        )

    @app_commands.command(name="open", description=_("open"))
    @app_commands.describe(number=_("open_number"))
    async def open_(
        interaction: discord.Interaction, number: app_commands.Range[int, 1, 99]
    ) -> None:
        """Go back to project ``number`` of /projects."""
        await _bot(interaction).run_command(interaction, text=f"open {number}", intent=Intent.OPEN)

    @app_commands.command(name="resend", description=_("resend"))
    async def resend(interaction: discord.Interaction) -> None:
        """Send the current project's last video again."""
        await _bot(interaction).run_command(interaction, text="resend", intent=Intent.RESEND)

    @app_commands.command(name="stats", description=_("stats"))
    @app_commands.default_permissions(administrator=True)  # hidden from server members
    async def stats(interaction: discord.Interaction) -> None:
        """The operator's statistics (NEMO_ADMIN_USERS only), to the asker only."""
        await _bot(interaction).run_command(
            interaction, text="/stats", intent=Intent.STATS, ephemeral=True
        )

    return [
        video, upload, export, status, credits, new, cancel, help_, projects, open_, resend, stats
    ]  # fmt: skip
