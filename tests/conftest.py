"""Fixtures every suite shares: a fresh PostgreSQL database per test, or a clear skip.

``HEMSYNC_TEST_DATABASE_URL`` names a PostgreSQL server and a database to connect to
for creating test databases (default: the local one, ``postgresql://postgres@127.0.0.1:5432/postgres``).
Where it is not reachable the PostgreSQL half of the suite is skipped, and says so;
with ``HEMSYNC_REQUIRE_POSTGRES=1`` (CI) that skip is a failure instead.

The tests that restart PostgreSQL never restart that server (it is shared): ``pg_cluster``
is a throwaway cluster of the test's own (proof/pg_cluster.py), skipped the same way
where the PostgreSQL server binaries are missing, and a failure with
``HEMSYNC_REQUIRE_POSTGRES=1``.
"""

import os
import uuid

import psycopg
import pytest
from psycopg import sql

from proof.pg_cluster import ClusterUnavailable, throwaway_cluster

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLUSTER_SKIP = "no throwaway cluster to restart"
_reachable = {}


def _admin_url():
    return os.environ.get("HEMSYNC_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


def _database_url(url, name):
    """The ``postgresql://`` URL ``url`` with its database replaced by ``name``."""
    base, _, query = url.partition("?")
    scheme, _, rest = base.partition("://")
    authority = rest.split("/", 1)[0]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


def _skip_postgres(message):
    """Skip this PostgreSQL test with ``message``, or fail it when HEMSYNC_REQUIRE_POSTGRES=1 (CI)."""
    if os.environ.get("HEMSYNC_REQUIRE_POSTGRES") == "1":
        pytest.fail(message.replace("skipped", "required (HEMSYNC_REQUIRE_POSTGRES=1) but"), pytrace=False)
    pytest.skip(message)


def require_postgres():
    """The admin URL of a reachable PostgreSQL; skip (or, with HEMSYNC_REQUIRE_POSTGRES=1, fail) without one."""
    url = _admin_url()
    if url not in _reachable:
        try:
            psycopg.connect(url, connect_timeout=3, autocommit=True).close()
            _reachable[url] = None
        except psycopg.Error as exc:
            _reachable[url] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    problem = _reachable[url]
    if problem is not None:
        _skip_postgres(f"PostgreSQL half skipped: no PostgreSQL at {url} ({problem}); "
                       "set HEMSYNC_TEST_DATABASE_URL to one")
    return url


@pytest.fixture
def pg_cluster():
    """A throwaway PostgreSQL cluster of this test's own, started, that the test may restart; removed after."""
    try:
        with throwaway_cluster() as cluster:
            yield cluster
    except ClusterUnavailable as exc:
        _skip_postgres(f"PostgreSQL half skipped: {CLUSTER_SKIP} ({exc})")


@pytest.fixture
def postgres_url():
    """The URL of a new, empty PostgreSQL database of this test's own, dropped after it."""
    admin = require_postgres()
    name = f"hemsync_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _database_url(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def pytest_generate_tests(metafunc):
    """Run the tests of a module marked ``both_stores`` once on SQLite and once on PostgreSQL."""
    if "store_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_stores"):
        metafunc.parametrize("store_kind", ["sqlite", "postgres"])


@pytest.fixture
def store_kind():
    """Which store a live server runs on: SQLite, unless the module is marked ``both_stores``."""
    return "sqlite"


@pytest.fixture
def server_database(request, store_kind):
    """The ``database=`` of ``start_live_server``: None (its SQLite file) or a fresh PostgreSQL URL."""
    return request.getfixturevalue("postgres_url") if store_kind == "postgres" else None


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """A fresh database of each kind, as ``open_store`` takes it: a SQLite path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "hemsync.db")
    return request.getfixturevalue("postgres_url")


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    """Say once, at the end, that the PostgreSQL half did not run (each skip is listed above it too)."""
    skipped = [str(r.longrepr) for r in terminalreporter.stats.get("skipped", [])]
    unreachable = sum(f"no PostgreSQL at {_admin_url()}" in r for r in skipped)
    no_cluster = sum(CLUSTER_SKIP in r for r in skipped)
    if unreachable:
        terminalreporter.write_sep("=", f"PostgreSQL half skipped: {unreachable} tests did not run on PostgreSQL "
                                        f"(no PostgreSQL at {_admin_url()})", yellow=True)
    if no_cluster:
        terminalreporter.write_sep("=", f"PostgreSQL half skipped: {no_cluster} tests did not restart PostgreSQL "
                                        "(no throwaway cluster could be made here: see each skip)", yellow=True)
