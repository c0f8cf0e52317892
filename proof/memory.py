"""Memory of processes as Linux reports it (/proc/PID/status): now, and the peak over a run.

The soak samples the server's resident set to see it does not grow; the bench at
scale takes the peak of the server's processes, of the laptop's (the bench process)
and, on PostgreSQL, of the database backends serving the server, while they push and
sync against a region's store.
"""

import pathlib
import threading

__all__ = ["status_kib", "PeakRss"]


def status_kib(pid, field="VmRSS"):
    """A ``kB`` figure of /proc/PID/status (``VmRSS``: resident now; ``VmHWM``: its peak so far)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"/proc/{pid}/status has no {field}")


class PeakRss:
    """Samples the resident memory of named processes every ``every`` seconds until stopped; keeps each one's peak.

    A context manager: ``with PeakRss({"server": pid, "laptop": os.getpid()}) as peak: ...``,
    then ``peak.mib("server")``. A name may stand for a group of processes that changes
    while it runs: a function returning their pids, whose resident memory is summed at
    each sample. A process gone meanwhile keeps the peak seen before (or leaves the sum).
    """

    def __init__(self, pids, every=0.1):
        self.pids, self.every = dict(pids), every
        self.peak_kib = {name: 0 for name in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self):
        """Take one sample of every process now."""
        for name, pids in self.pids.items():
            try:
                self.peak_kib[name] = max(self.peak_kib[name], sum(map(_resident_kib, pids() if callable(pids)
                                                                       else [pids])))
            except Exception:  # noqa: BLE001 - a sample that cannot be taken (a process or a session gone) is skipped
                pass

    def mib(self, name):
        """The peak seen of ``name``, in MiB."""
        return round(self.peak_kib[name] / 1024, 1)

    def _run(self):
        while True:
            self.sample()
            if self._stop.wait(self.every):
                return


def _resident_kib(pid):
    try:
        return status_kib(pid)
    except (OSError, ValueError):
        return 0  # gone since its pid was listed
