"""Follow-up the region asks for: its calendar, its figures and its due lists, each defined once.

Pure functions over record states (no store, no I/O): the server computes them
over its store, the laptop over its replica, the pages and the CLI print them.
"""
