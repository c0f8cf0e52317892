"""A laptop process that freezes at a chosen SQL statement, for the fault trials to SIGKILL it there.

It runs the real client code (``client_sync.sync.sync`` or ``Replica.write``)
on a replica file; SQLite tells it of every statement the replica runs, and at
statement ``--at K`` (counted from the start of the work, not of opening the
replica; the staff directory's rows are not counted) it prints ``paused at
statement K: SQL`` on stderr and waits to be killed. A ``--at`` beyond the
last statement lets the work finish and exit 0.

Example: python -m proof.crash --replica laptop.db --at 14 sync
         python -m proof.crash --replica laptop.db --at 3 write patient ID '{"phone": "035-1"}'
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
    parser.add_argument("work", choices=("sync", "write"))
    parser.add_argument("args", nargs="*", help="write: TYPE ID FIELDS_JSON")
    args = parser.parse_args(argv)
    replica = Replica(args.replica)
    count = [0]

    def trace(statement):
        if "staff" in statement:
            return
        count[0] += 1
        if count[0] == args.at:
            print(f"paused at statement {args.at}: {' '.join(statement.split())[:80]}", file=sys.stderr, flush=True)
            while True:
                time.sleep(60)

    replica.conn.set_trace_callback(trace)
    if args.work == "sync":
        sync(replica)
    else:
        record_type, record_id, fields = args.args
        replica.write(record_type, record_id, json.loads(fields))
    print(f"finished after {count[0]} statements", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
