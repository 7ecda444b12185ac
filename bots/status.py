"""The exit status of ``nemo-bot`` (kept light: ``nemo-bot config`` imports it too)."""

from __future__ import annotations

import enum

__all__ = ["EXIT_CODES_HELP", "ExitCode"]


class ExitCode(enum.IntEnum):
    """The exit status of ``nemo-bot`` (README.md, "Exit status")."""

    OK = 0
    FAILED = 1  # a platform failed to start, or something went wrong on our side
    USAGE = 2  # bad flag, bad setting, missing token, --attach file not found, a message not sent
    UNREACHABLE = 3  # the video service could not be reached or stopped answering
    ATTACHMENT_REFUSED = 4  # a file was refused (format, size, empty, unreadable)
    EXPORT_FAILED = 5  # the export failed, was blocked, or there was nothing to export
    REFUSED = 6  # the video service refused a request (credits, rate limit, error)
    INTERRUPTED = 130  # Ctrl-C; SIGTERM and SIGHUP give 128 + the signal number


EXIT_CODES_HELP = """\
exit status (chat and demo with -m: the first failure decides):
  0  everything was answered (and any export delivered)
  1  start-up failed, or something went wrong inside nemo-bot
  2  bad flag or setting, missing token, --attach file not found, a message
     not sent (an unknown /command, over 4096 characters, /attach without a file)
  3  the video service could not be reached or stopped answering
  4  an attachment was refused (format, size, empty file)
  5  the export failed or could not start (nothing to export, plan blocks exports)
  6  a request was refused (out of credits, rate limited, the service's error, a bot limit)
  130 / 143 / 129  stopped by Ctrl-C / SIGTERM / SIGHUP"""
