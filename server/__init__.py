"""The hemsync sync server: Flask app, store, push and pull over the shared schema.

``create_app(test_config=None)`` builds the app; ``hemsync-server`` (server.cli)
is its command line. The wire protocol is docs/protocol.md.

Importing this package loads nothing else: the names below are looked up on
first use, so ``server.web`` (the pages' shared templates, catalogue and CSRF,
which the laptop's pages import too) comes without the app, store and API.
"""

__all__ = ["create_app", "Store", "SqliteStore"]

_HOMES = {"create_app": "app", "Store": "store", "SqliteStore": "store"}


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
