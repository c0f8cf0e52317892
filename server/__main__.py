"""``python -m server``: the same command line as ``hemsync-server``."""

from .cli import main

main(prog_name="hemsync-server")
