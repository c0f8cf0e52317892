"""``make soak``: 200 laptops syncing every 30 s for an hour; the server's memory and open files must stay flat.

It is ``make load`` run long, with the server's resident memory and open file
descriptors sampled every minute. The run fails when the load test's own checks
fail, when any request is dropped or answered 5xx, or when the server grows:
from the start to the end of what follows the warm-up, memory may not grow by more
than ``RSS_GROWTH`` and open files by more than ``FD_GROWTH``. The warm-up is the
first minute or the first third of the run, whichever is longer, because bounded
caches fill for a while under load (each server thread's SQLite page cache, the
view cache) while a leak goes on growing to the end. Start and end are each the
median of up to five samples: under load the server's memory swings by a third
from one minute to the next with the requests in flight (each carries whole
record states), and one sample at a peak is not growth.

Every five minutes (``--new-patients-minutes``) the laptops move on to ten new
patients, as days bring new patients. On the same ten for an hour, each care plan
and medication would take some 3,000 edits and conflicts; a record keeps every
value it no longer shows (DOMAIN.md: never drop), so its state grew past 100 KB in
six minutes, and every push merging it and every pull page carrying it with it:
the server's memory then measures the records' growth, not a leak.

Example: python -m proof.soak --minutes 60           (SOAK_MINUTES=3 make soak: a short one)
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

from . import load

__all__ = ["main", "growth_problems"]

#: Resident memory may grow by this share after the warm-up (allocator noise, the audit log's pages).
RSS_GROWTH = 0.25
#: Open file descriptors may grow by this many after the warm-up (a few keep-alive connections).
FD_GROWTH = 25


def growth_problems(samples):
    """What grew in ``samples`` of (minute, RSS KiB, open fds), one a minute, after the warm-up, as sentences."""
    if len(samples) < 3:
        return [f"only {len(samples)} sample(s): run at least 2 minutes"]
    settled = samples[max(1, len(samples) // 3):]
    window = max(1, min(5, len(settled) // 3))
    first, last = settled[:window], settled[-window:]
    problems = []
    for what, column, unit, grown in (("memory", 1, " KiB", lambda a, b: b > a * (1 + RSS_GROWTH)),
                                      ("open files", 2, "", lambda a, b: b > a + FD_GROWTH)):
        before = statistics.median(sample[column] for sample in first)
        after = statistics.median(sample[column] for sample in last)
        if grown(before, after):
            problems.append(f"{what} grew from {before:g}{unit} (minutes {_span(first)}) "
                            f"to {after:g}{unit} (minutes {_span(last)})")
    return problems


def _span(samples):
    return f"{samples[0][0]:g}-{samples[-1][0]:g}" if len(samples) > 1 else f"{samples[0][0]:g}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m proof.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES") or 60))
    parser.add_argument("--laptops", type=int, default=int(os.environ.get("LAPTOPS") or 200))
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between a laptop's syncs")
    parser.add_argument("--new-patients-minutes", type=float, default=5.0,
                        help="minutes after which everyone works on ten new patients (0: the same ten all along)")
    args = parser.parse_args(argv)
    if args.minutes > 240 or args.laptops > 500:
        parser.error("bounded: at most 240 minutes and 500 laptops")
    workdir = tempfile.mkdtemp(prefix="hemsync-soak-")
    try:
        figures = load.run(args.laptops, args.minutes * 60, args.interval, 1, workdir, sample_every=60,
                           new_patients_every=args.new_patients_minutes * 60 or None)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    problems = growth_problems(figures["samples"])
    print()
    print(load.table(figures))
    print("\nminute  RSS KiB  open files")
    for minute, rss, fds in figures["samples"]:
        print(f"{minute:>6}  {rss:>7}  {fds:>10}")
    for problem in problems:
        print(f"soak: PROBLEM: {problem}")
    figures["growth_problems"] = problems
    print(json.dumps(figures))
    return 0 if figures["ok"] and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
