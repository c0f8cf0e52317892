"""``make fuzz``: bad input against the real server, over HTTP, with a valid device token.

Two fuzzers, both seeded:

1. schemathesis 4 generates requests from the served ``/openapi.json``, both
   valid ones and ones that break the schema, for every operation; nearly all
   carry a valid token and client version (an admin's on the admin endpoints)
   so they reach the real handlers, a few keep what was generated. Every answer
   must be below 500, and every error must have the one JSON shape
   ``{"error": {"code", "message", "details"}}``.
2. hypothesis forges pull cursors (well-formed base64 of any numbers): a clean
   4xx or a page, never a 5xx;
3. hypothesis builds malformed change batches (wrong types, unknown fields and
   record types, invalid personnummer, far-future clinical times, huge strings,
   SQL-looking text, duplicate change ids in one batch, missing keys) mixed with
   valid changes, and pushes them. A batch refused whole must leave the
   server's database exactly as it was; in an accepted batch every rejected
   change must leave no trace in any record, every applied one must be there,
   and SQL-looking text must come back verbatim. The server's database is read
   through its store (server.store), so the checks hold on SQLite and PostgreSQL alike.

Prints the requests sent and the statuses seen per operation; exits non-zero
on any failure, each printed with what reproduces it.

With ``--postgres URL`` the server serves from a scratch database on that PostgreSQL
server (made and dropped).

Example: python -m proof.fuzz --requests 10000 --seed 1
"""

import argparse
import collections
import datetime as dt
import gzip
import hashlib
import json
import os
import pathlib
import random
import contextlib
import shutil
import sys
import tempfile
import time
import uuid

import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st

from client_sync import __version__ as CLIENT_VERSION
from schema.identity import make_test_personnummer

from .server_process import ServerProcess, scratch_database

__all__ = ["main", "run", "schemathesis_fuzz", "batch_fuzz", "cursor_fuzz", "error_shape_problem", "snapshot"]

MUNICIPALITY = "Fuzzby"
#: Share of each fuzzer's requests per operation (schemathesis) and of the whole budget.
WEIGHTS = {"POST /v1/push": 0.35, "GET /v1/pull": 0.12, "POST /v1/handshake": 0.1, "POST /v1/access-log": 0.12,
           "GET /v1/admin/audit": 0.05, "GET /v1/admin/devices": 0.03, "GET /v1/admin/quarantine": 0.05,
           "GET /healthz": 0.01, "GET /openapi.json": 0.01}
SCHEMATHESIS_SHARE = 0.7


def error_shape_problem(response):
    """What is wrong with an error answer's body (None when it has the one JSON shape)."""
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} answer is not JSON: {response.text[:120]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
        return f"{response.status_code} answer lacks the error shape: {json.dumps(body)[:200]}"
    if not (isinstance(error["code"], str) and isinstance(error["message"], str)
            and isinstance(error["details"], (dict, list))):
        return f"{response.status_code} error has wrong types: {json.dumps(error)[:200]}"
    return None


#: What a push can change on the server: each table, its key order, and the columns digested.
PUSHED_TABLES = (("records", ("type", "id"), ("type", "id", "seq", "state")),
                 ("feed", ("seq",), ("seq", "type", "id", "change_id")),
                 ("changes", ("change_id",), ("change_id", "result")),
                 ("quarantine", ("id",), ("change_id", "code")))


def snapshot(store):
    """A digest of what a push can change in the server's store: records, feed, changes, quarantine."""
    digest = hashlib.sha256()
    for table, key, columns in PUSHED_TABLES:
        for row in store.table_rows(table, key):
            digest.update(repr(tuple(row[c] for c in columns)).encode())
    return digest.hexdigest()


class Setup:
    """The server and its users: a doctor (and her device), a dispatcher and an admin."""

    def __init__(self, workdir, database=None):
        # The fuzzers send bad and missing tokens on purpose, all from loopback: with the slow-down
        # of failed authentications on, every request after the first few would be a 429.
        self.server = ServerProcess(pathlib.Path(workdir) / "server", env={"HEMSYNC_AUTH_FAILURES": "0"},
                                    database=database)
        doctor = self.server.add_user("Fuzz Doktor", "doctor", [MUNICIPALITY])
        admin = self.server.add_user("Fuzz Admin", "admin", [])
        dispatcher = self.server.add_user("Fuzz Samordnare", "dispatcher", [MUNICIPALITY])
        self.device_id, self.token = self.server.enroll(doctor, "fuzz laptop")
        _, self.admin_token = self.server.enroll(admin, "fuzz admin")
        _, self.dispatcher_token = self.server.enroll(dispatcher, "fuzz dispatcher")
        self.server.start()

    def token_for(self, path):
        """The token whose role may call this path: the real handler runs, not only the role check."""
        if path.startswith("/v1/admin"):
            return self.admin_token
        if path.startswith(("/v1/queue", "/v1/escalations", "/v1/requests")):
            return self.dispatcher_token
        return self.token

    def headers(self, token=None):
        return {"Authorization": f"Bearer {token or self.token}", "X-Hemsync-Client": CLIENT_VERSION}


def schemathesis_fuzz(setup, budget, run_seed, failures, statuses):
    """Fuzz every operation of the served OpenAPI document; return the number of requests sent."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(setup.server.url + "/openapi.json")
    session = requests.Session()
    sent = [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        share = WEIGHTS.get(name, 0.02) / sum(WEIGHTS.values())
        examples = max(5, int(budget * share / 2))
        token = setup.token_for(operation.path)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            rng = random.Random(f"{run_seed}/{name}/{mode.value}")

            @seed(run_seed)
            @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
                      suppress_health_check=list(HealthCheck), phases=(Phase.generate,))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                headers = dict(case.headers or {})
                if rng.random() < 0.95:  # reach the real handlers; a few keep the generated headers
                    headers.update(setup.headers(token))
                case.headers = headers
                try:
                    response = case.call(base_url=setup.server.url, session=session, timeout=30)
                except requests.RequestException as exc:
                    failures.append(f"{name} ({mode.value}): no answer: {exc}")
                    return
                sent[0] += 1
                statuses[name][response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{name} ({mode.value}): {response.status_code}: {response.text[:200]}\n"
                                    f"    reproduce: {_short(case.as_curl_command())}")
                elif response.status_code >= 400:
                    problem = error_shape_problem(response)
                    if problem:
                        failures.append(f"{name} ({mode.value}): {problem}\n"
                                        f"    reproduce: {_short(case.as_curl_command())}")

            try:
                fuzz()
            except Unsatisfiable:
                pass  # nothing to break in it (no parameters, no body): the positive run covered it
            except Exception as exc:  # schemathesis could not generate for this operation: say so
                failures.append(f"{name} ({mode.value}): the fuzzer failed: {type(exc).__name__}: {exc}"[:400])
    return sent[0]


def _short(text, limit=600):
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


# -- malformed change batches ------------------------------------------------------------

SQLISH = ("'; DROP TABLE records; --", "Robert'); DELETE FROM feed WHERE ('1'='1",
          "\" OR 1=1 --", "1; UPDATE changes SET result = 'x'", "') UNION SELECT token_hash FROM devices --")
#: Every category a change of the batch may fall in, and what must come of it.
CATEGORIES = ("valid", "valid_edit", "sql_text", "wrong_type", "unknown_field", "unknown_type",
              "bad_personnummer", "future_time", "huge_string", "forbidden_field", "poisoned_base",
              "poisoned_resolves", "huge_op", "not_a_uuid")
#: What a change's base may be poisoned with: each must be refused for that change alone.
POISONED_BASES = (["not", "a", "map"], {"name": ["x"] * 10_000}, {"name": {"deep": "dict"}}, {"name": 17},
                  {"shoe_size": "v1"}, {"name": "v" * 5_000}, 42, "base", {"name": [[["nested"]]]})


class Batches:
    """Builds change batches of one device, valid and malformed, and what each change must come to."""

    def __init__(self, device_id):
        self.device_id = device_id
        self.op = 0
        self.patients = []  # patients created and applied, for edits and vitals

    def hlc(self):
        return f"{int(time.time() * 1000):016d}-{0:06d}"

    def change(self, record_type, record_id, fields, base=None):
        self.op += 1
        return {"change_id": str(uuid.uuid4()), "record_type": record_type, "record_id": record_id,
                "device_id": self.device_id, "op": self.op, "hlc": self.hlc(), "base": base or {},
                "fields": fields}

    def make(self, category, draw):
        """``(change, expected)``: expected is "applied", "rejected" or "verbatim" (applied, text kept as sent)."""
        personnummer = make_test_personnummer(dt.date(1930 + draw(st.integers(0, 60)), 1 + draw(st.integers(0, 11)),
                                                      1 + draw(st.integers(0, 27))), draw(st.integers(0, 999)))
        patient = {"personnummer": personnummer, "name": "Fuzz Testsson", "municipality": MUNICIPALITY}
        # Draws never depend on the server's state (hypothesis replays them): pick by a drawn number.
        known = self.patients[draw(st.integers(0, 10 ** 6)) % len(self.patients)]
        if category == "valid":
            return self.change("patient", str(uuid.uuid4()), patient), "applied"
        if category == "valid_edit":
            return self.change("observation", str(uuid.uuid4()), {
                "patient_id": known, "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "pulse": draw(st.integers(30, 200))}), "applied"
        if category == "sql_text":
            return self.change("patient", str(uuid.uuid4()), {**patient, "name": draw(st.sampled_from(SQLISH)),
                                                              "access_notes": draw(st.sampled_from(SQLISH))}), \
                "verbatim"
        if category == "wrong_type":
            field, value = draw(st.sampled_from((
                ("name", 12345), ("palliative", "yes"), ("spo2_scale", "two"), ("municipality", ["a"]),
                ("name", {"first": "x"}), ("personnummer", 191212121212), ("enrolled_at", 20240101),
                ("spo2_scale", 2.5), ("palliative", 1))))
            return self.change("patient", str(uuid.uuid4()), {**patient, field: value}), "rejected"
        if category == "unknown_field":
            name = draw(st.sampled_from(("favourite_colour", "Name", "id_", "__proto__", "token_hash", "seq")))
            return self.change("patient", str(uuid.uuid4()), {**patient, name: "x"}), "rejected"
        if category == "unknown_type":
            kind = draw(st.sampled_from(("patients", "Patient", "device", "users", "", "visit;--")))
            return self.change(kind, str(uuid.uuid4()), patient), "rejected"
        if category == "bad_personnummer":
            good = personnummer
            bad = draw(st.sampled_from((good[:-1] + str((int(good[-1]) + 1) % 10), good[:8], "19121212-121X",
                                        "abcdefghijkl", "19001301" + good[-4:], good + "0")))
            return self.change("patient", str(uuid.uuid4()), {**patient, "personnummer": bad}), "rejected"
        if category == "future_time":
            ahead = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=draw(st.integers(2, 4000)))
            return self.change("observation", str(uuid.uuid4()), {
                "patient_id": known, "measured_at": ahead.isoformat(), "pulse": 80}), "rejected"
        if category == "huge_string":
            size = draw(st.sampled_from((20_000, 100_000, 1_000_000)))
            return self.change("patient", str(uuid.uuid4()), {**patient, "name": "Å" * size}), "rejected_or_413"
        if category == "poisoned_base":
            base = draw(st.sampled_from(POISONED_BASES))
            return self.change("patient", known, {"phone": "070-000 00 00"}, base=base), "rejected"
        if category == "poisoned_resolves":
            resolves = draw(st.sampled_from(("one", [1, 2], ["x" * 500], ["c"] * 1_000, {"a": 1})))
            change = self.change("patient", known, {"phone": "070"})
            return {**change, "resolves": resolves}, "rejected"
        if category == "huge_op":
            change = self.change("patient", str(uuid.uuid4()), patient)
            return {**change, "op": draw(st.sampled_from((2 ** 63 - 1, 2 ** 40, 0, -5)))}, "rejected"
        if category == "not_a_uuid":
            record_id = draw(st.sampled_from(("p1", "../../etc", "x" * 100, "00000000-0000-0000-0000-00000000000")))
            return self.change("patient", record_id, patient), "rejected"
        if category == "forbidden_field":
            return self.change("observation", str(uuid.uuid4()), {
                "patient_id": known, "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "pulse": 80, "news2": 0}), "rejected"
        raise ValueError(category)


def _post(setup, body, gzip_it=True):
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    headers = {**setup.headers(), "Content-Type": "application/json"}
    if gzip_it:
        data = gzip.compress(data, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return requests.post(setup.server.url + "/v1/push", data=data, headers=headers, timeout=60)


def _state(store, pairs):
    """The stored (wire) state of each ``(type, id)``, or None where there is no such record."""
    return {key: (json.loads(stored.wire) if (stored := store.get_record(*key)) else None) for key in pairs}


def batch_fuzz(setup, examples, run_seed, failures, statuses):
    """Push hypothesis-built malformed batches; check that nothing is half-applied. Return requests sent."""
    from schema.wire import decode_state, merged_changes

    batches = Batches(setup.device_id)
    store = setup.server.store
    sent = [0]
    first = [batches.change("patient", str(uuid.uuid4()), {
        "personnummer": make_test_personnummer(dt.date(1940, 2, 2 + i), 100 + i), "name": f"Fuzz {i}",
        "municipality": MUNICIPALITY}) for i in range(3)]
    answer = _post(setup, {"pending": 0, "changes": first})
    answer.raise_for_status()
    batches.patients += [c["record_id"] for c in first]

    @seed(run_seed)
    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck),
              phases=(Phase.generate,))
    @given(data=st.data())
    def fuzz(data):
        draw = data.draw
        categories = draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=6))
        made = [batches.make(c, draw) for c in categories]
        changes = [c for c, _ in made]
        whole = draw(st.sampled_from((None, None, None, "duplicate_id", "missing_key", "op_string",
                                      "not_a_list", "extra_key", "deep_json")))
        if whole == "duplicate_id" and changes:
            changes.append(dict(changes[draw(st.integers(0, len(changes) - 1))]))
        elif whole == "missing_key":
            victim = draw(st.integers(0, len(changes) - 1))
            missing = draw(st.sampled_from(("change_id", "record_type", "fields", "hlc")))
            changes[victim] = {k: v for k, v in changes[victim].items() if k != missing}
        elif whole == "op_string":
            changes[0] = {**changes[0], "op": "seventeen"}
        elif whole == "extra_key":
            changes[0] = {**changes[0], "sneaky": True}
        elif whole == "deep_json":
            deep = "leaf"
            for _ in range(draw(st.sampled_from((40, 700)))):
                deep = [deep]
            changes[0] = {**changes[0], "base": {"name": deep}}
        body = {"pending": 0, "changes": changes if whole != "not_a_list" else {"0": changes}}
        before = snapshot(store)
        response = _post(setup, body)
        sent[0] += 1
        statuses["POST /v1/push (batches)"][response.status_code] += 1
        label = f"batch {categories} {whole or ''}"
        if response.status_code >= 500:
            failures.append(f"{label}: {response.status_code} {response.text[:300]}")
            return
        if response.status_code >= 400:
            problem = error_shape_problem(response)
            if problem:
                failures.append(f"{label}: {problem}")
            if snapshot(store) != before:
                failures.append(f"{label}: refused whole with {response.status_code} but the server's state changed")
            if whole is None and not any(e == "rejected_or_413" for _, e in made):
                failures.append(f"{label}: a batch of well-formed changes was refused whole: {response.text[:300]}")
            return
        if whole is not None:
            failures.append(f"{label}: a malformed batch ({whole}) was accepted")
            return
        results = {r["change_id"]: r for r in response.json()["results"]}
        states = _state(store, {(c["record_type"], c["record_id"]) for c in changes})
        for change, expected in made:
            result = results.get(change["change_id"])
            state = states.get((change["record_type"], change["record_id"]))
            holds = state is not None and change["change_id"] in merged_changes(decode_state(state))
            if result is None:
                failures.append(f"{label}: no result for {change['change_id']}")
            elif result["result"] == "rejected":
                if expected in ("applied", "verbatim"):
                    failures.append(f"{label}: a valid {change['record_type']} change was rejected: {result['error']}")
                if holds:
                    failures.append(f"{label}: a rejected change is in its record (half-applied)")
                if set(result.get("error") or {}) != {"code", "message", "details"}:
                    failures.append(f"{label}: a rejection lacks the error shape: {result}")
            else:
                if expected.startswith("rejected"):
                    failures.append(f"{label}: a malformed change ({expected}) was {result['result']}: "
                                    f"{json.dumps(change)[:300]}")
                if not holds:
                    failures.append(f"{label}: an applied change is not in its record")
                if expected == "verbatim" and state["fields"].get("name") != change["fields"]["name"]:
                    failures.append(f"{label}: SQL-looking text did not come back verbatim")
                if change["record_type"] == "patient" and result["result"] != "rejected":
                    batches.patients.append(change["record_id"])

    fuzz()
    return sent[0]


def cursor_fuzz(setup, examples, run_seed, failures, statuses):
    """Pull with forged cursors (well-formed base64 of any numbers): a clean 4xx or a page, never a 5xx."""
    import base64

    session = requests.Session()
    sent = [0]

    number = st.integers(-2 ** 70, 2 ** 70) | st.integers(0, 50)
    # seq, scope, catching, after: the scope ids a server gave out are small, so most forgeries name 0 or 1.
    small = st.sampled_from((0, 0, 1, 2 ** 64))

    @seed(run_seed)
    @settings(max_examples=examples, database=None, deadline=None, suppress_health_check=list(HealthCheck),
              phases=(Phase.generate,))
    @given(numbers=st.tuples(number, small, small, number).map(list) | st.lists(number, min_size=3, max_size=6),
           version=st.sampled_from(("1", "1", "1", "2", "")))
    def fuzz(numbers, version):
        text = ".".join([version, *map(str, numbers)])
        cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        response = session.get(setup.server.url + "/v1/pull", params={"cursor": cursor}, headers=setup.headers(),
                               timeout=30)
        sent[0] += 1
        statuses["GET /v1/pull (forged cursors)"][response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"pull with a forged cursor {text!r}: {response.status_code} {response.text[:200]}")
        elif response.status_code >= 400 and error_shape_problem(response):
            failures.append(f"pull with a forged cursor {text!r}: {error_shape_problem(response)}")

    fuzz()
    return sent[0]


def run(requests_wanted=10000, run_seed=1, workdir=None, progress=print, database=None):
    """Both fuzzers, about ``requests_wanted`` requests in all; return the figures (``ok`` when nothing failed).

    ``database``: a PostgreSQL URL to serve from (default: a SQLite file in ``workdir``).
    """
    workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="hemsync-fuzz-"))
    setup = Setup(workdir, database)
    failures, statuses = [], collections.defaultdict(collections.Counter)
    start = time.monotonic()
    try:
        progress(f"fuzz: schemathesis against {setup.server.url}/openapi.json (seed {run_seed}) ...")
        sent = schemathesis_fuzz(setup, int(requests_wanted * SCHEMATHESIS_SHARE), run_seed, failures, statuses)
        progress(f"fuzz: {sent} schemathesis requests; forged cursors, malformed change batches ...")
        sent += cursor_fuzz(setup, max(100, requests_wanted // 50), run_seed, failures, statuses)
        sent += batch_fuzz(setup, max(10, requests_wanted - sent), run_seed, failures, statuses)
    finally:
        setup.server.stop()
    reached = sum(n for counts in statuses.values() for s, n in counts.items() if s not in (401, 426))
    return {
        "requests": sent,
        "seconds": round(time.monotonic() - start, 1),
        "reached_handlers": reached,
        "statuses": {name: dict(sorted(counts.items())) for name, counts in sorted(statuses.items())},
        "server_errors": sum(n for counts in statuses.values() for s, n in counts.items() if s >= 500),
        "failures": failures,
        "ok": not failures,
        "seed": run_seed,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m proof.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=int(os.environ.get("REQUESTS") or 10000))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED") or 1))
    parser.add_argument("--postgres", metavar="URL", default=os.environ.get("POSTGRES") or None,
                        help="serve from a scratch database on this PostgreSQL server (made and dropped)")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="hemsync-fuzz-")
    try:
        with contextlib.ExitStack() as stack:
            database = stack.enter_context(scratch_database(args.postgres)) if args.postgres else None
            figures = run(args.requests, args.seed, workdir, database=database)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"requests {figures['requests']} in {figures['seconds']} s; past auth and version checks "
          f"{figures['reached_handlers']}; 5xx {figures['server_errors']}; failures {len(figures['failures'])}")
    for name, counts in figures["statuses"].items():
        print(f"  {name:<28} " + "  ".join(f"{status}: {n}" for status, n in counts.items()))
    for failure in figures["failures"][:30]:
        print(f"FAIL {failure}")
    print(json.dumps({k: v for k, v in figures.items() if k != "failures"} | {"failures": len(figures["failures"])}))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
