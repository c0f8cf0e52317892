"""Laptops for the trials: logged-in replica files, and the checks that they agree with the server.

``converged`` compares a replica with what the server would hand its device
now (a fresh full pull); ``ledger_problems`` checks, in the server's own
database, that every change a laptop made was merged exactly once: never
lost, never doubled.
"""

import collections
import json
import pathlib

from client_sync.http import SyncClient
from client_sync.replica import Replica
from schema.wire import merged_changes
from server.store import open_store

__all__ = ["Laptop", "login", "server_wires", "replica_wires", "converged", "ledger_problems"]


class Laptop:
    """A device's replica file (logged in by :func:`login`), with the change ids it has put in its outbox."""

    def __init__(self, path, url, token, name):
        self.name = name
        self.url = url
        self.token = token
        self.replica = Replica(path)
        self.written = set()

    @property
    def path(self):
        return self.replica.path

    def reopen(self):
        """Open the replica again in this thread (SQLite connections belong to the thread that made them)."""
        path = self.replica.path
        try:
            self.replica.close()
        except Exception:  # made in another thread; that thread is done with it
            pass
        self.replica = Replica(path)

    def client(self, url=None, **options):
        """A SyncClient for this laptop's device (through ``url``, e.g. a proxy)."""
        return SyncClient(url or self.url, self.token, **options)

    def note_outbox(self):
        """Remember every change now waiting in the outbox (the ledger checks them later)."""
        self.written |= {c for (c,) in self.replica.conn.execute("SELECT change_id FROM outbox")}

    def close(self):
        self.replica.close()


def login(directory, url, token, name):
    """A logged-in :class:`Laptop` in ``directory``."""
    laptop = Laptop(pathlib.Path(directory) / f"{name}.db", url, token, name)
    laptop.replica.login(url, token, SyncClient(url, token, timeout=(5, 30)).handshake(0, 0))
    return laptop


def server_wires(client):
    """Every record state the server would hand this client's device now (a fresh full pull)."""
    wires, cursor = {}, None
    while True:
        page = client.pull(cursor)
        wires.update({f"{w['type']}/{w['id']}": w for w in page["records"]})
        if not page["more"]:
            return wires
        cursor = page["cursor"]


def replica_wires(replica):
    """Every server state a replica holds, as stored."""
    return {f"{t}/{i}": json.loads(w) for t, i, w in replica.conn.execute("SELECT type, id, wire FROM records")}


def converged(laptop, client=None):
    """Problems (a list of strings) keeping this laptop from being equal to the server; [] when equal."""
    problems = []
    server = server_wires(client or laptop.client())
    local = replica_wires(laptop.replica)
    missing = sorted(set(server) - set(local))
    extra = sorted(set(local) - set(server))
    differ = sorted(k for k in set(server) & set(local) if server[k] != local[k])
    for label, keys in (("missing", missing), ("extra", extra), ("different", differ)):
        if keys:
            problems.append(f"{laptop.name}: {len(keys)} record(s) {label}, e.g. {keys[0]}")
    waiting = laptop.replica.outbox()
    if waiting:
        problems.append(f"{laptop.name}: {len(waiting)} change(s) still in the outbox")
    return problems


def ledger_problems(db_path, laptops):
    """Every change the laptops made is in the server's ledger once and in its record; no record counts a change twice.

    ``db_path``: the server's SQLite file or PostgreSQL URL (read through its store).
    """
    problems = []
    store = open_store(db_path)
    try:
        ledger = {row["change_id"]: row for row in store.table_rows("changes", ("change_id",))}
        accepted = collections.Counter(
            (row["record_type"], row["record_id"]) for row in ledger.values()
            if json.loads(row["result"])["result"] in ("applied", "conflict"))
        results = {}
        for laptop in laptops:
            rejected = {r["change"]["change_id"] for r in laptop.replica.rejected()}
            for change_id in sorted(laptop.written):
                row = ledger.get(change_id)
                if row is None:
                    problems.append(f"{laptop.name}: change {change_id} never reached the server (lost)")
                    continue
                result = json.loads(row["result"])["result"]
                results[change_id] = (row["record_type"], row["record_id"], result)
                if result == "rejected" and change_id not in rejected:
                    problems.append(f"{laptop.name}: change {change_id} was rejected but the laptop does not show it")
        states = {}
        for change_id, (record_type, record_id, result) in sorted(results.items()):
            if result == "rejected":
                continue
            key = (record_type, record_id)
            if key not in states:
                stored = store.get_record(record_type, record_id)
                states[key] = stored.state if stored else None
            if states[key] is None or change_id not in merged_changes(states[key]):
                problems.append(f"change {change_id} was accepted but its record {record_type}/{record_id} "
                                "does not hold it (lost)")
        for (record_type, record_id), state in sorted(states.items()):
            if state is not None and state["rev"] != accepted[(record_type, record_id)]:
                problems.append(f"{record_type}/{record_id}: rev {state['rev']} but "
                                f"{accepted[(record_type, record_id)]} accepted change(s) "
                                "(a change merged twice, or one missing)")
    finally:
        store.close()
    return problems
