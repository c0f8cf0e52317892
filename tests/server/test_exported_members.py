"""The server package exports exactly its public API."""

import server


def test_the_server_package_exports_exactly_its_public_api():
    assert sorted(server.__all__) == ["SqliteStore", "Store", "create_app"]
    assert all(hasattr(server, name) for name in server.__all__)
