"""The subcommands of `cyclegan`, one module each: `add_*_command(subparsers)` plus its handler."""
