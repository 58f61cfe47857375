"""Every flag of every ``clqa`` subcommand has help text, and no help states its default twice."""
import argparse

import pytest

from clqa_jax.cli import main as cli_main


def _parsers(parser: argparse.ArgumentParser):
  """``parser`` and every nested subcommand parser (metrics xor-full, vocab train, ...)."""
  yield parser
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      for sub in action.choices.values():
        yield from _parsers(sub)


@pytest.mark.parametrize("name", list(cli_main.SUBCOMMANDS))
def test_every_flag_has_help_and_no_default_is_stated_twice(name):
  import importlib
  module = importlib.import_module(cli_main.SUBCOMMANDS[name][0])
  for parser in _parsers(cli_main.build_subcommand_parser(name, module)):
    for action in parser._actions:  # pylint: disable=protected-access
      what = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
      assert action.help and action.help != argparse.SUPPRESS and action.help.strip(), what
      shown = parser._get_formatter()._expand_help(action)  # pylint: disable=protected-access
      assert shown.count("default:") <= 1 and shown.count("(default") <= 1, (
          f"{what}: the default is stated twice: {shown!r}")
      assert "(default: None)" not in shown, f"{what}: {shown!r}"
    parser.format_help()  # every help string formats (no stray % in help text)


def test_top_level_help_lists_the_gin_subcommands(capsys):
  assert cli_main.main(["--help"]) == 0
  out = capsys.readouterr().out
  assert "Every subcommand takes --gin_file" not in out
  for name in cli_main.GIN_SUBCOMMANDS:
    module = __import__(cli_main.SUBCOMMANDS[name][0], fromlist=["add_arguments"])
    parser = cli_main.build_subcommand_parser(name, module)
    assert any("--gin_file" in a.option_strings for a in parser._actions), name  # pylint: disable=protected-access
  for name in set(cli_main.SUBCOMMANDS) - set(cli_main.GIN_SUBCOMMANDS):
    module = __import__(cli_main.SUBCOMMANDS[name][0], fromlist=["add_arguments"])
    parser = cli_main.build_subcommand_parser(name, module)
    assert not any("--gin_file" in a.option_strings for a in parser._actions), name  # pylint: disable=protected-access
