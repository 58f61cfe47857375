"""The help formatter of every ``clqa`` subcommand: a flag's default is stated once."""
from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Appends ``(default: X)`` to a flag's help, except where it says nothing: a default of
  None (the help explains what happens instead) or a switch, or where the help already names
  its default."""

  def _get_help_string(self, action: argparse.Action) -> str:
    help_text = action.help or ""
    if (action.default is None or isinstance(action.default, bool)
        or "default" in help_text or not action.option_strings):
      return help_text
    return super()._get_help_string(action)
