"""Command groups of the ``tocsin`` CLI.

Every module in this package defines ``register(subparsers)`` and adds its own
sub-commands; ``tocsin.cli`` discovers them, so a domain adds a command without
editing the entry point. A command handler takes the parsed ``args`` and
returns the process exit code (0 on success; non-zero with a clear message on
bad input).
"""
