"""client_sync's public API is exactly its __all__."""

import client_sync


def test_all_lists_exactly_the_public_members():
    public = {name for name in dir(client_sync) if not name.startswith("_")}
    modules = {"errors", "http", "replica", "directory", "sync", "lock", "files", "background", "cli", "ui",
               "display"}
    # `sync` is both a submodule and the function exported in its place.
    assert set(client_sync.__all__) - {"__version__"} == public - (modules - set(client_sync.__all__))
    for name in client_sync.__all__:
        assert hasattr(client_sync, name)
