"""The click app ``hwloop``: the only code that prints.

Owns the commands, one module per group (`app`: the group and `main`;
`common`: options, config files, error mapping; `train`: train and eval;
`summary`: the one line they print;
`tools`: devices, probe, apply, serve, report, log; `farm`). Every command
turns its options into calls on the library and maps typed errors to one
line and an exit code. May import anything in hwloop; nothing imports it.
"""

from hwloop.cli.app import cli, main

__all__ = ["cli", "main"]
