"""`python -m client_sync` runs the `hemsync` command line."""

from .cli import main

main()
