"""``make faults``: seeded, randomised fault trials; after each, every laptop must agree with the server.

Each trial is made from its seed alone: three laptops (two doctors and a nurse)
in a municipality of their own on one shared server, a few shared patients,
conflicting offline work, some laptops syncing first, and then one fault:

- ``cut_up`` / ``cut_down``: the line is cut (through a loopback proxy) a seeded
  fraction into the push request, or into the answer to the push or to a pull
  page, on one to three connections in a row; the laptop syncs again until a
  sync completes;
- ``kill_sync``: the laptop's sync runs in its own process and is SIGKILLed at
  a seeded point: the client's named points (``pull.before_commit``,
  ``push.before_results``) or a seeded SQL statement of the sync;
- ``kill_write``: a local write runs in its own process, SIGKILLed at a seeded
  SQL statement of the write;
- ``server_kill``: the server is SIGKILLed while a push is in flight (a seeded
  push of a long outbox, while its request arrives, while it is merged, or as
  its answer leaves) and restarted; the laptop syncs until one completes. On
  PostgreSQL, a third of them end every database session of the server instead
  (what a database restart does to it: open transactions rolled back), and with
  several processes another third SIGKILLs only the process serving the push;
- ``pg_restart`` (with ``--restart-postgres`` only): PostgreSQL itself is restarted
  (``pg_ctl restart``, fast or immediate, down for a seeded moment) while a push is
  in flight: as it arrives, while it is merged, or as its answer leaves. The
  server's processes must live through it: a request whose connection died is
  answered 503 ``database_unavailable`` (never 500, never held), and the laptop
  syncs until one completes.

Then every laptop syncs to the head and the trial checks that each replica
equals what the server hands its device, that no outbox keeps anything, and
that every change the laptops made was merged exactly once (proof/laptops.py).
A failure prints its seed: ``make faults SEED=<seed>`` runs that trial alone.

With ``--postgres URL`` the server is ``serve --workers 4`` on a scratch PostgreSQL
database, and ``server_kill`` SIGKILLs all four processes mid-push, or only the one
serving the push (its supervisor starts another), or ends the database's sessions.
With ``--restart-postgres`` the same runs on a throwaway PostgreSQL cluster of the
run's own (proof/pg_cluster.py: initdb in a temporary directory, pg_ctl on a free
port; the machine's shared PostgreSQL is never restarted), and half the trials are
``pg_restart``.

Example: python -m proof.faults --trials 200
"""

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

from client_sync.errors import ConnectionLost, ProtocolError, ServerFailed
from client_sync.sync import PAUSE_ENV, sync

from .laptops import converged, ledger_problems, login
from .pg_cluster import SHUTDOWN_MODES, throwaway_cluster
from .proxy import LoopbackProxy, message_length
from .server_process import ROOT, ServerProcess, scratch_database
from .workload import Editor, Workload, shared_records

__all__ = ["main", "run_trials", "Trial", "KINDS", "RESTART_KIND"]

KINDS = ("cut_up", "cut_down", "kill_sync", "kill_write", "server_kill")
#: The kind that restarts PostgreSQL itself: only on a cluster of the run's own.
RESTART_KIND = "pg_restart"


@dataclasses.dataclass
class Trial:
    """What one trial did and found."""

    seed: int
    kind: str = ""
    detail: str = ""
    landed: bool = False
    problems: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def _sync_until_done(laptop, url, tries=12, pause=0.0):
    """Sync through a bad line until a sync completes; return how many failed first.

    A line cut inside an answer's headers can look like a whole answer with an
    empty body, which the client reports as ProtocolError, not ConnectionLost;
    a server whose database is restarting answers 503: either way the person
    syncs again. Any other failure (a 500) ends the trial.
    """
    client = laptop.client(url, retries=1, sleep=lambda s: None, timeout=(2, 5))
    for failed in range(tries):
        try:
            sync(laptop.replica, client=client)
            return failed
        except (ConnectionLost, ProtocolError):
            time.sleep(pause)
        except ServerFailed as exc:
            if exc.status != 503:
                raise
            time.sleep(pause)
    raise AssertionError(f"{laptop.name}: no sync completed in {tries} tries")


def _child(args, env=None):
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _paused(process, timeout=60):
    """Wait for the child to pause (then SIGKILL it: True) or to finish (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if ready:
            line = process.stderr.readline()
            if "paused at" in line:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                return line.strip()
            if line == "":  # it finished
                process.wait(timeout=10)
                return None
        elif process.poll() is not None:
            return None
    process.kill()
    raise AssertionError("the laptop process neither paused nor finished")


class Trials:
    """One server for a run of trials; each trial in a municipality of its own."""

    def __init__(self, workdir, progress=print, database=None, workers=1, cluster=None, kinds=None):
        # With a cluster of its own, half the trials restart it; drawn with rng.choice as ever, so a
        # seed of the other modes runs the same trial it always did.
        self.kinds = tuple(kinds or ((KINDS + (RESTART_KIND,) * len(KINDS)) if cluster else KINDS))
        if RESTART_KIND in self.kinds and cluster is None:
            raise ValueError(f"{RESTART_KIND} trials need a cluster of their own to restart")
        self.cluster = cluster  # the throwaway cluster serving ``database``: pg_restart restarts it
        self.workdir = pathlib.Path(workdir)
        self.server = ServerProcess(self.workdir / "server", database=database, workers=workers)
        self.server.start()
        self.progress = progress

    def close(self):
        self.server.stop()

    def run(self, seed):
        """Run the trial of this seed; return its :class:`Trial`."""
        trial = Trial(seed)
        start = time.monotonic()
        directory = self.workdir / f"trial-{seed}"
        directory.mkdir(parents=True, exist_ok=True)
        fleet = []
        try:
            self._trial(trial, directory, fleet)
        except Exception:
            trial.problems.append("the trial raised:\n" + traceback.format_exc())
        finally:
            for laptop in fleet:
                laptop.close()
            trial.seconds = time.monotonic() - start
            if not trial.problems:
                shutil.rmtree(directory, ignore_errors=True)
        return trial

    def _trial(self, trial, directory, fleet):
        rng = random.Random(seed := trial.seed)
        work = Workload(seed)
        server = self.server
        municipality = f"Feltorp {seed}"
        roles = ("doctor", "doctor", "nurse")
        for i, role in enumerate(roles):
            user = server.add_user(f"Fel {role} {i} ({seed})", role, [municipality])
            _, token = server.enroll(user, f"fault laptop {i}")
            fleet.append(login(directory, server.url, token, f"laptop-{i}"))
        shared = shared_records(fleet[0].replica, work, municipality, patients=rng.randrange(2, 5))
        fleet[0].note_outbox()
        for laptop in fleet:
            sync(laptop.replica)
        editors = [Editor(Workload(seed * 10 + i), role, shared) for i, role in enumerate(roles)]
        for laptop, editor in zip(fleet, editors):
            for _ in range(rng.randrange(2, 12)):
                try:
                    editor.edit(laptop.replica)
                except Exception as exc:  # a rule refused it on the laptop
                    if type(exc).__module__.split(".")[0] != "schema":
                        raise
            laptop.note_outbox()
        victim = rng.randrange(len(fleet))
        others = [laptop for i, laptop in enumerate(fleet) if i != victim]
        for laptop in rng.sample(others, rng.randrange(0, len(others) + 1)):
            sync(laptop.replica)  # so that the victim has something to pull
        trial.kind = rng.choice(self.kinds)
        getattr(self, f"_{trial.kind}")(trial, rng, fleet[victim], work)
        fleet[victim].reopen()
        fleet[victim].note_outbox()
        for _ in range(2):  # the first round sends everything, the second brings everyone to the head
            for laptop in fleet:
                sync(laptop.replica)
        for laptop in fleet:
            trial.problems += converged(laptop)
            integrity = laptop.replica.conn.execute("PRAGMA integrity_check").fetchone()[0]
            if integrity != "ok":
                trial.problems.append(f"{laptop.name}: replica integrity check: {integrity}")
        trial.problems += ledger_problems(server.db_path, fleet)

    # -- the faults -------------------------------------------------------------------

    def _cut(self, trial, rng, laptop, direction):
        cuts = rng.randrange(1, 4)
        if direction == "up":
            request = "POST /v1/push"
        else:
            request = rng.choice(("POST /v1/push", "GET /v1/pull"))
        targets = [(direction, request, 1, rng.uniform(0.02, 0.98)) for _ in range(cuts)]
        proxy = LoopbackProxy(self.server.port, plan=lambda n: {"target": targets[n]} if n < len(targets) else {})
        failed = "?"
        try:
            laptop.replica.set_setting("server_url", proxy.url)
            failed = _sync_until_done(laptop, proxy.url)
        finally:
            laptop.replica.set_setting("server_url", self.server.url)
            proxy.stop()
            trial.landed = bool(proxy.cuts)
            trial.detail = (f"{len(proxy.cuts)}/{cuts} cut(s) {direction} in {request} at "
                            f"{', '.join(f'{c.request_offset}' for c in proxy.cuts)} bytes into it; "
                            f"{failed} sync(s) failed")

    def _cut_up(self, trial, rng, laptop, work):
        self._cut(trial, rng, laptop, "up")

    def _cut_down(self, trial, rng, laptop, work):
        self._cut(trial, rng, laptop, "down")

    def _kill_sync(self, trial, rng, laptop, work):
        laptop.replica.close()
        point = rng.choice(("pull.before_commit", "push.before_results", "statement", "statement"))
        if point == "statement":
            estimate = 12 + 3 * len(laptop.written) + 40
            at = rng.randrange(1, estimate)
            process = _child(["proof.crash", "--replica", laptop.path, "--at", str(at), "sync"])
            point = f"statement {at}"
        else:
            process = _child(["client_sync", "--replica", laptop.path, "sync"], env={PAUSE_ENV: point})
        paused = _paused(process)
        trial.landed = paused is not None
        trial.detail = f"SIGKILL at {point}: {paused or 'the sync finished first'}"

    def _kill_write(self, trial, rng, laptop, work):
        patient = rng.choice(laptop_patients(laptop))
        laptop.replica.close()
        record_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        at = rng.randrange(1, 14)
        process = _child(["proof.crash", "--replica", laptop.path, "--at", str(at), "write", "observation",
                          record_id, json.dumps(work.vitals(patient))])
        paused = _paused(process)
        trial.landed = paused is not None
        laptop.reopen()
        kept = laptop.replica.conn.execute("SELECT count(*) FROM outbox WHERE record_id = ?",
                                           (record_id,)).fetchone()[0]
        op = laptop.replica.setting("op", 0)
        top = laptop.replica.conn.execute("SELECT COALESCE(MAX(op), 0) FROM outbox").fetchone()[0]
        if top > op:
            trial.problems.append(f"{laptop.name}: the outbox holds op {top} but the replica's counter is {op} "
                                  "(a write was half kept)")
        trial.detail = f"SIGKILL at {paused or f'statement {at}: the write finished first'}; " \
                       f"write {'kept whole' if kept else 'not kept'}"

    def _server_kill(self, trial, rng, laptop, work):
        self._mid_push(trial, rng, laptop, work)

    def _pg_restart(self, trial, rng, laptop, work):
        self._mid_push(trial, rng, laptop, work, restart=True)

    def _mid_push(self, trial, rng, laptop, work, restart=False):
        """Strike while a push is in flight: kill the server (or some of it), or restart its database."""
        patient = rng.choice(laptop_patients(laptop))
        extra = rng.randrange(120, 400)
        with laptop.replica.transaction():
            for _ in range(extra):
                laptop.replica.write("observation", work.uuid(), work.vitals(patient))
        laptop.note_outbox()
        batches = (laptop.replica.unsent_count() + 99) // 100
        nth = rng.randrange(1, batches + 1)
        moment = rng.choice(("request", "merging", "answer"))
        fraction, delay, down_for = rng.uniform(0.05, 0.95), rng.uniform(0.0, 0.05), rng.uniform(0.1, 0.8)
        server = self.server
        state = {"pushes": 0, "total": 0, "answered": False, "killed": None, "statuses": []}
        if restart:
            victim, mode = "restart", rng.choice(SHUTDOWN_MODES)
        else:
            # On PostgreSQL a third of the kills hit the database instead: every session of the
            # server's ended at once, open transactions rolled back, as a database restart does to
            # them; with several processes another third kills only the one serving the push.
            victim = rng.choice(("all", "database", "one_worker") if server.workers > 1 else ("all", "database")) \
                if server.on_postgres else "all"
        if victim == "database":
            moment = "merging"  # outside a transaction the server would not notice: a new connection is taken
        restarting = []

        def kill(how):
            state["killed"] = how
            if victim == "database":
                server.kill_database_sessions()
                return
            if victim == "restart":
                # pg_ctl takes a moment: not in the proxy's thread, which must go on forwarding.
                thread = threading.Thread(target=self._restart_database, args=(mode, down_for, state), daemon=True)
                thread.start()
                restarting.append(thread)
                return
            if victim == "one_worker":
                pid = server.kill_worker_serving(state["port"])
                state["killed"] = f"{how}: worker {pid}" if pid else f"too late: no worker held push {nth}"
                return  # its supervisor starts another; the other workers go on serving
            server.kill()

            def start_again():
                time.sleep(down_for)
                server.start()

            threading.Thread(target=start_again, daemon=True).start()

        def kill_while_merging():
            if state["answered"]:
                state["killed"] = f"too late: push {nth}/{batches} was answered first"
                return
            kill(f"{delay * 1000:.0f} ms after push {nth}/{batches} arrived (merging)")

        def hook(direction, flow, data):
            if direction == "down" and flow.sent == flow.request_start:  # an answer begins: note its status
                state["statuses"].append((flow.request, data[9:12].decode(errors="replace")))
            if flow.request != "POST /v1/push":
                return None
            if direction == "down" and state["pushes"] == nth:
                state["answered"] = True
            if state["killed"]:
                return None
            if direction == "up" and flow.sent == flow.request_start:
                state["pushes"] += 1
                if state["pushes"] == nth:
                    state["total"] = message_length(data)
                    state["port"] = flow.server_side_port
            if state["pushes"] != nth:
                return None
            if direction == "down":
                if moment == "answer":
                    kill(f"as the answer to push {nth}/{batches} left")
                    return None if restart else 0
                return None
            into = flow.sent - flow.request_start
            if moment == "request":
                cut = int(fraction * state["total"])
                if into + len(data) > cut:
                    kill(f"while push {nth}/{batches} arrived ({cut} of {state['total']} bytes)")
                    # A dead server cuts the line; a restarting database leaves the request to arrive.
                    return None if restart else max(0, cut - into)
            elif moment == "merging" and into + len(data) >= state["total"]:
                state["killed"] = "pending"
                threading.Timer(delay, kill_while_merging).start()
            return None

        log = server.workdir / "server.log"
        logged = log.stat().st_size if log.exists() else 0
        proxy = LoopbackProxy(server.port, hook=hook)
        try:
            laptop.replica.set_setting("server_url", proxy.url)
            failed = _sync_until_done(laptop, proxy.url, tries=30, pause=0.3)
        finally:
            laptop.replica.set_setting("server_url", server.url)
            proxy.stop()
            for thread in restarting:
                thread.join(timeout=120)
        _wait_until_up(server)
        trial.landed = bool(state["killed"]) and not state["killed"].startswith(("too late", "pending"))
        failures = sorted({status for _, status in state["statuses"] if status.startswith("5") and status != "503"})
        if failures:
            trial.problems.append(f"the server answered {', '.join(failures)} (a fault must be met with 503 and "
                                  f"Retry-After, or no answer): {state['statuses']}")
        if restart:
            # A process still starting (one a previous trial killed, say) cannot open its store while
            # the database is down and exits, and the supervisor starts another: a process that was
            # serving must live through the restart.
            with open(log, "rb") as lines:
                lines.seek(logged)
                ended = [line.strip() for line in lines.read().decode(errors="replace").splitlines()
                         if any(f"process {pid} ended (" in line for pid in state.get("serving", ()))]
            if ended:
                trial.problems.append(f"a serving server process died when its database restarted: {ended}")
        if "restart_error" in state:
            trial.problems.append(f"the database did not restart: {state['restart_error']}")
        what = {"all": "server SIGKILLed", "database": "the database's sessions ended",
                "one_worker": "one of the server's processes SIGKILLed",
                "restart": f"PostgreSQL restarted ({state.get('restart', mode if restart else '')})"}[victim]
        unavailable = sum(status == "503" for _, status in state["statuses"])
        trial.detail = f"{what} {state['killed'] or 'never (no push reached it)'}; " \
                       f"{extra} extra changes, {failed} sync(s) failed, {unavailable} answer(s) 503"

    def _restart_database(self, mode, down_for, state):
        """Restart the run's own cluster (its thread's work); note how, or what went wrong, in ``state``."""
        state["serving"] = self.server.listening_pids()
        try:
            took = self.cluster.restart(mode, down_for)
            state["restart"] = f"-m {mode}, down {took:.1f} s"
        except Exception as exc:
            state["restart_error"] = f"{type(exc).__name__}: {exc}"


def laptop_patients(laptop):
    """Ids of the patients a laptop holds."""
    return [i for (i,) in laptop.replica.conn.execute("SELECT id FROM records WHERE type = 'patient' ORDER BY id")]


def _wait_until_up(server, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is None:
            try:
                import requests

                if requests.get(server.url + "/healthz", timeout=1).ok:
                    return
            except Exception:
                pass
        time.sleep(0.1)
    raise AssertionError("the server did not come back")


def run_trials(first_seed, trials, workdir=None, progress=print, database=None, workers=1, cluster=None,
               kinds=None):
    """Run ``trials`` trials with seeds ``first_seed``, ``first_seed + 1``, ...; return their :class:`Trial` list.

    ``database``: a PostgreSQL URL to serve from with ``workers`` processes (``server_kill`` kills them all);
    ``cluster``: the :class:`~proof.pg_cluster.Cluster` serving it, when the run may restart it (``pg_restart``);
    ``kinds``: the kinds to draw from (default: every kind the run can do).
    """
    workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="hemsync-faults-"))
    runner = Trials(workdir, progress, database, workers, cluster, kinds)
    done = []
    try:
        for seed in range(first_seed, first_seed + trials):
            trial = runner.run(seed)
            done.append(trial)
            mark = "FAIL" if trial.problems else ("ok  " if trial.landed else "ok (fault did not land)")
            progress(f"trial {seed:>8} {trial.kind:<11} {mark} {trial.seconds:5.1f} s  {trial.detail}")
            for problem in trial.problems:
                progress(f"    {problem}")
    finally:
        runner.close()
    return done


def summary(done):
    """The figures of a run of trials (a dict)."""
    by_kind = {}
    for trial in done:
        kind = by_kind.setdefault(trial.kind or "setup", {"trials": 0, "landed": 0, "failed": 0})
        kind["trials"] += 1
        kind["landed"] += trial.landed
        kind["failed"] += bool(trial.problems)
    return {
        "trials": len(done),
        "landed_mid_transfer": sum(t.landed for t in done),
        "failures": sum(bool(t.problems) for t in done),
        "failed_seeds": [t.seed for t in done if t.problems],
        "by_kind": by_kind,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m proof.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=None, help="default 200 (1 with --seed)")
    parser.add_argument("--seed", type=int, default=None, help="the first trial's seed (default: from the clock)")
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("POSTGRES") or None,
                        help="serve from a scratch database on this PostgreSQL server (made and dropped)")
    parser.add_argument("--restart-postgres", action="store_true", default=os.environ.get("PG_RESTART") == "1",
                        help="serve from a throwaway PostgreSQL cluster of the run's own (initdb, pg_ctl) and "
                             "restart it mid-push too; the machine's PostgreSQL is never touched")
    parser.add_argument("--workers", type=int, default=4, help="server processes with --postgres or "
                                                               "--restart-postgres")
    args = parser.parse_args(argv)
    if args.restart_postgres and args.postgres:
        parser.error("--restart-postgres makes a PostgreSQL of its own to restart: leave out --postgres")
    trials = args.trials or int(os.environ.get("TRIALS") or 0) or (1 if args.seed is not None else 200)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000 * 1000
    mode = " PG_RESTART=1" if args.restart_postgres else (" POSTGRES=<url>" if args.postgres else "")
    print(f"faults: {trials} trial(s) from seed {seed} (rerun one: make faults{mode} SEED=<seed>)")
    workdir = tempfile.mkdtemp(prefix="hemsync-faults-")
    try:
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(throwaway_cluster()) if args.restart_postgres else None
            server = cluster.url if cluster else args.postgres
            database = stack.enter_context(scratch_database(server)) if server else None
            if cluster:
                print(f"faults: a throwaway PostgreSQL cluster at {cluster.directory}, port {cluster.port}")
            done = run_trials(seed, trials, workdir, database=database, workers=args.workers if database else 1,
                              cluster=cluster)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = summary(done)
    print()
    print(f"trials {figures['trials']}, faults landed mid-transfer {figures['landed_mid_transfer']}, "
          f"failures {figures['failures']}")
    for kind, counts in sorted(figures["by_kind"].items()):
        print(f"  {kind:<12} {counts['trials']:>4} trials  {counts['landed']:>4} landed  {counts['failed']:>3} failed")
    if figures["failed_seeds"]:
        print("failed seeds: " + " ".join(str(s) for s in figures["failed_seeds"]))
    print(json.dumps(figures))
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
