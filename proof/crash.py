"""A laptop process that freezes at a chosen SQL statement, for the fault trials to SIGKILL it there.

It runs the real client code (``client_sync.sync.sync``, ``Replica.write``, or
the doctor's pages of ``hemsync ui``) on a replica file; SQLite tells it of every
statement the replica runs, and at statement ``--at K`` (counted from the start
of the work, not of opening the replica; the staff directory's rows are not
counted) it prints ``paused at statement K: SQL`` on stderr and waits to be
killed. A ``--at`` beyond the last statement lets the work finish (``finished
after N statements``) and exit 0.

``ui`` serves the pages as ``hemsync ui`` does (the same listener, on a free
port, the launch link printed on stdout, no background sync) and counts the
statements of the first page write (the first POST the pages' checks let in),
from the start of its request to its answer; the answer about to leave, after
the last statement, counts as one more point to freeze at.

Example: python -m proof.crash --replica laptop.db --at 14 sync
         python -m proof.crash --replica laptop.db --at 3 write patient ID '{"phone": "035-1"}'
         python -m proof.crash --replica laptop.db --at 9 ui
"""

import argparse
import json
import sys
import time

from client_sync.replica import Replica
from client_sync.sync import sync

__all__ = ["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m proof.crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replica", required=True)
    parser.add_argument("--at", type=int, required=True, help="freeze at this statement (1-based)")
    parser.add_argument("work", choices=("sync", "write", "ui"))
    parser.add_argument("args", nargs="*", help="write: TYPE ID FIELDS_JSON")
    args = parser.parse_args(argv)
    if args.work == "ui":
        return _pages(args.replica, args.at)
    replica = Replica(args.replica)
    trace = Freezer(args.at)
    replica.conn.set_trace_callback(trace)
    if args.work == "sync":
        sync(replica)
    else:
        record_type, record_id, fields = args.args
        replica.write(record_type, record_id, json.loads(fields))
    trace.finished()
    return 0


class Freezer:
    """An SQLite trace callback that counts the work's statements and freezes the process at statement ``at``."""

    def __init__(self, at):
        self.at, self.count = at, 0

    def __call__(self, statement):
        if "staff" in statement:
            return
        self.count += 1
        if self.count == self.at:
            self._pause(f"statement {self.at}: {' '.join(statement.split())[:80]}")

    def answering(self):
        """The work is done and its answer about to leave: the point after the last statement counts as one more."""
        if self.count + 1 == self.at:
            self._pause(f"statement {self.at}: the answer, after the last of {self.count} statements")

    @staticmethod
    def _pause(where):
        print(f"paused at {where}", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)

    def finished(self):
        """Say the work ended before the statement to freeze at."""
        print(f"finished after {self.count} statements", file=sys.stderr, flush=True)


def _pages(replica_path, at):
    """Serve the doctor's pages, freezing at statement ``at`` of the first page write."""
    from flask import g, request

    from client_sync.ui import context
    from client_sync.ui.listener import Listener

    listener = Listener(replica_path)
    counted = []

    @listener.app.before_request
    def freeze_the_first_write():  # after the pages' own checks: a refused request is no write
        if request.method == "POST" and not counted:
            counted.append(Freezer(at))
            g.freezer = counted[0]
            context.replica().conn.set_trace_callback(counted[0])  # the connection the view writes on

    @listener.app.after_request
    def say_it_finished(response):
        if "freezer" in g:
            g.freezer.answering()
            g.freezer.finished()
        return response

    print(f"the doctor's pages of {replica_path}, frozen at statement {at} of the first write:\n{listener.url}",
          flush=True)
    listener.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
