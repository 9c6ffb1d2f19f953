"""The ``ovlab`` command table: every registered sub-command is listed with its owner, and ``--help``
imports no command module (issue: ``ovlab --help`` ≤ 1 s needs it not to import torch)."""

from __future__ import annotations

import subprocess
import sys

from ovlab.experiments import cli


def test_commands_table_matches_what_the_modules_register():
    parser = cli.build_parser()  # imports every owner module
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMANDS)


def test_each_command_is_registered_by_the_module_the_table_names():
    for name, (module, _help) in cli.COMMANDS.items():
        parser, sub = cli._top_parser()
        __import__(module, fromlist=["add_parser"]).add_parser(sub)
        assert name in sub.choices, f"{module} does not register {name!r}"


def test_help_imports_no_command_module_and_no_torch():
    code = (
        "import sys\n"
        "from ovlab.experiments import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'open_clip', 'transformers', *cli.COMMAND_MODULES) if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out


def test_unknown_command_is_an_argparse_error(capsys):
    try:
        cli.main(["no-such-command"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice" in capsys.readouterr().err
