"""Users, devices and their bearer tokens; who is calling, and whether they may.

A device is enrolled to one user and gets a random token, shown once: the store
keeps only its SHA-256, so a copied database cannot be used to sync. A revoked
device is answered ``device_revoked`` with ``wipe: true`` on every call.
Failed authentications are counted per client address (:class:`AuthThrottle`):
past a few, the address is answered 429 for a while. Admin acts name their admin
(:func:`acting_admin`).
"""

import collections
import contextlib
import hashlib
import math
import re
import secrets
import threading
import time
import uuid

from schema.clock import now_text
from schema.errors import InvalidRecord
from schema.identity import validate_hsa_id
from schema.references import canonical_municipality
from schema.roles import INTEGRATION, ROLES

from .errors import ClientTooOld, DeviceRevoked, NotFound, RoleForbidden, TooManyRequests, Unauthorized
from .bodies import DEVICE_HEALTH_FIELDS

__all__ = [
    "CLIENT_HEADER",
    "CLIENT_ROLE",
    "AuthThrottle",
    "DevicePushes",
    "DeviceRate",
    "acting_admin",
    "device_health",
    "hash_token",
    "add_municipality",
    "add_user",
    "add_client",
    "enroll",
    "revoke",
    "authenticate",
    "check_client_version",
    "require_role",
    "parse_version",
]

CLIENT_HEADER = "X-Hemsync-Client"
TOKEN_BYTES = 32
#: The role of an integration client (:data:`schema.roles.INTEGRATION`): a user that is no person.
CLIENT_ROLE = INTEGRATION



def device_health(store):
    """Every device's health as an admin sees it, API and CLI alike (:data:`server.bodies.DEVICE_HEALTH_FIELDS`)."""
    return [{k: device.get(k) for k in DEVICE_HEALTH_FIELDS} for device in store.devices()]


def hash_token(token):
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_municipality(store, name):
    """Add a municipality to the region's list; return ``(name, added)``.

    Names are kept as the region writes them; one that differs from a known name
    only in case is that name (``added`` False), never a second municipality.
    """
    name = name.strip() if isinstance(name, str) else ""
    if not 0 < len(name) <= 100:
        raise InvalidRecord("a municipality needs a name of 1 to 100 characters", details={"name": ["required"]})
    known = {m.casefold(): m for m in store.municipalities()}
    if name.casefold() in known:
        return known[name.casefold()], False
    return name, store.add_municipality(name)


def add_user(store, name, role, municipalities, hsa_id=None, user_id=None):
    """Create a user; return it. Raises InvalidRecord for a bad role, name, municipality or HSA-id.

    A user's municipalities must be on the region's list (case ignored; stored
    as the list spells them): a typo would give the user an empty scope.
    """
    known = store.municipalities()
    municipalities = [canonical_municipality(m.strip(), known) for m in municipalities if m and m.strip()]
    problems = {}
    if not (isinstance(name, str) and name.strip()):
        problems["name"] = ["a user needs a name"]
    if role not in ROLES:
        problems["role"] = [f"{role!r} is not a role; roles: {', '.join(ROLES)}"]
    if not municipalities and role != "admin":
        problems["municipalities"] = ["a doctor, nurse or dispatcher works in at least one municipality"]
    if problems:
        raise InvalidRecord("invalid user: " + "; ".join(f"{k}: {v[0]}" for k, v in problems.items()),
                            details=problems)
    user = {
        "id": user_id or str(uuid.uuid4()),
        "name": name.strip(),
        "role": role,
        "municipalities": sorted(set(municipalities)),
        "hsa_id": validate_hsa_id(hsa_id) if hsa_id else None,
        "created_at": now_text(),
    }
    store.add_user(user)
    return user


def add_client(store, name, municipalities):
    """Enroll an integration client reading FHIR in ``municipalities``; return ``(user, device, token)``.

    A client is a user of role :data:`CLIENT_ROLE` with one device whose token it
    sends as its bearer token (shown once, like a laptop's); revoking that device
    ends the client. Raises InvalidRecord for a missing name or municipality.
    """
    known = store.municipalities()
    municipalities = sorted({canonical_municipality(m.strip(), known) for m in municipalities if m and m.strip()})
    problems = {}
    if not (isinstance(name, str) and name.strip()):
        problems["name"] = ["a client needs a name, e.g. the journal system's"]
    if not municipalities:
        problems["municipalities"] = ["a client reads the patients of at least one municipality"]
    if problems:
        raise InvalidRecord("invalid client: " + "; ".join(f"{k}: {v[0]}" for k, v in problems.items()),
                            details=problems)
    user = {"id": str(uuid.uuid4()), "name": name.strip(), "role": CLIENT_ROLE, "municipalities": municipalities,
            "hsa_id": None, "created_at": now_text()}
    store.add_user(user)
    device, token = enroll(store, user["id"], f"integration client {user['name']}")
    return user, device, token


def enroll(store, user_id, label=None):
    """Enroll a new device for a user; return ``(device, token)`` — the token is never shown again."""
    user = store.get_user(user_id)
    if user is None:
        raise NotFound(f"no user {user_id}: list users with `hemsync-server devices` or add one with add-user")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    device = {
        "id": str(uuid.uuid4()),
        "user_id": user_id,
        "label": label or f"{user['name']}'s device",
        "token_hash": hash_token(token),
        "created_at": now_text(),
    }
    store.add_device(device)
    return device, token


def revoke(store, device_id):
    """Revoke a device: from now on it is told to wipe its replica and gets nothing else."""
    device = store.get_device(device_id)
    if device is None:
        raise NotFound(f"no device {device_id}: list devices with `hemsync-server devices`")
    if not device["revoked_at"]:
        store.update_device(device_id, {"revoked_at": now_text()})
    return store.get_device(device_id)


def authenticate(store, authorization, on_failure=None):
    """The ``(device, user)`` of an ``Authorization: Bearer`` header; raise Unauthorized or DeviceRevoked.

    ``on_failure(reason, token_hash, device)`` is called before either is raised
    (``reason``: ``missing``, ``unknown`` or ``revoked``), for the audit log.
    """
    def fail(reason, error, token_hash=None, device=None):
        if on_failure is not None:
            on_failure(reason, token_hash, device)
        raise error

    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        fail("missing", Unauthorized(
            "send the device's token as 'Authorization: Bearer <token>' (enroll a device to get one)"))
    token_hash = hash_token(token.strip())
    device = store.device_by_token_hash(token_hash)
    if device is None:
        fail("unknown", Unauthorized("this token is not known to the server: log in again with a token from an admin"),
             token_hash)
    if device["revoked_at"]:
        fail("revoked", DeviceRevoked(
            "this device is revoked: its replica must be wiped; ask an admin to enroll it again",
            details={"wipe": True, "revoked_at": device["revoked_at"]}), token_hash, device)
    user = store.get_user(device["user_id"])
    return device, user


def acting_admin(store, admin_id, act):
    """The admin user ``admin_id`` (``--by``) doing ``act``; raise RoleForbidden for an unknown or non-admin id."""
    admin = store.get_user(admin_id) if admin_id else None
    if admin is None or admin["role"] != "admin":
        shown = "no user id was given" if not admin_id else (
            f"{admin_id} is no user" if admin is None else f"{admin_id} is a {admin['role']}")
        raise RoleForbidden(f"only an admin may {act}: {shown}; pass an admin's user id with --by",
                            details={"by": [admin_id]})
    return admin


class DeviceRate:
    """Requests per device, in this process: a token bucket of ``per_minute`` tokens, refilled evenly.

    A device may burst up to ``per_minute`` requests, then make one every
    ``60 / per_minute`` seconds; past that it is answered 429 with Retry-After, so
    one flooding laptop cannot take the threads and the writer from the others.
    ``per_minute`` 0 switches it off. At most ``max_devices`` devices are
    remembered, the least recently seen forgotten first (a forgotten one starts full).
    """

    def __init__(self, per_minute, max_devices=100_000, clock=time.monotonic):
        self.per_minute, self.max_devices, self.clock = per_minute, max_devices, clock
        self._buckets = collections.OrderedDict()  # device id -> [tokens, when counted]
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings):
        """The rate HEMSYNC_DEVICE_RATE configures."""
        return cls(settings["HEMSYNC_DEVICE_RATE"])

    def take(self, device_id):
        """Count one request of ``device_id``; raise TooManyRequests when it is over its rate."""
        if not self.per_minute:
            return
        now, refill = self.clock(), self.per_minute / 60.0
        with self._lock:
            tokens, then = self._buckets.pop(device_id, (self.per_minute, now))
            tokens = min(self.per_minute, tokens + (now - then) * refill)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[device_id] = (tokens, now)
            while len(self._buckets) > self.max_devices:
                self._buckets.popitem(last=False)
        if not allowed:
            wait = math.ceil((1 - tokens) / refill)
            raise TooManyRequests(f"this device made more than {self.per_minute} requests a minute "
                                  f"(HEMSYNC_DEVICE_RATE): wait {wait} s; the laptop slows down by itself",
                                  retry_after=wait)


class DevicePushes:
    """A device's pushes, in this process: one at a time.

    The writer goes to waiting threads first come, first served
    (:class:`server.store.sqlite.WriterQueue`), so a device with one push at a
    time takes one turn in each round of the devices waiting: its fair share of
    the writer, whatever its request rate. A second push of a device whose first is
    still being merged (a flood; or a laptop's retry of a push it stopped waiting
    for) is answered 429 with Retry-After instead of queueing a second turn; a
    laptop sends one push at a time of itself.
    """

    def __init__(self):
        self._pushing = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def one_at_a_time(self, device_id):
        """Hold ``device_id``'s one push slot for the ``with`` block; raise TooManyRequests if it is taken."""
        with self._lock:
            if device_id in self._pushing:
                raise TooManyRequests("this device's previous push is still being merged: wait for its answer "
                                      "before sending the next; the laptop retries by itself", retry_after=1)
            self._pushing.add(device_id)
        try:
            yield
        finally:
            with self._lock:
                self._pushing.discard(device_id)


class AuthThrottle:
    """Failed authentications per client address, in this process, in bounded memory.

    Failures of an address count until ``10 × lockout_seconds`` pass without one.
    From the ``max_failures``-th on, each failure locks the address out for
    ``lockout_seconds``, doubled for every failure past the limit (at most an
    hour): a locked address is answered 429 with Retry-After, whatever its token,
    so guessing tokens costs time. At most ``max_addresses`` addresses are
    remembered, the least recently failing forgotten first. ``max_failures`` 0
    switches it off. One process each: several server processes each keep their own.
    """

    MAX_LOCKOUT = 3600

    def __init__(self, max_failures, lockout_seconds, max_addresses=10_000, clock=time.monotonic):
        self.max_failures, self.lockout = max_failures, lockout_seconds
        self.max_addresses, self.clock = max_addresses, clock
        self._failures = collections.OrderedDict()  # address -> [count, last failure, locked until]
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings):
        """The throttle configured by HEMSYNC_AUTH_FAILURES and HEMSYNC_AUTH_LOCKOUT_SECONDS."""
        return cls(settings["HEMSYNC_AUTH_FAILURES"], settings["HEMSYNC_AUTH_LOCKOUT_SECONDS"])

    def __len__(self):
        return len(self._failures)

    def check(self, address):
        """Raise TooManyRequests while ``address`` is locked out."""
        with self._lock:
            entry = self._failures.get(address)
            wait = entry[2] - self.clock() if entry else 0
        if wait > 0:
            raise TooManyRequests(f"too many failed authentications from {address}: wait {math.ceil(wait)} s, "
                                  "then check the device's token (log in again with a token from an admin)",
                                  retry_after=math.ceil(wait))

    def failed(self, address):
        """Count a failed authentication from ``address``; return True when it locks the address out."""
        if not self.max_failures:
            return False
        now = self.clock()
        with self._lock:
            entry = self._failures.pop(address, None)
            if entry is None or now - entry[1] > 10 * self.lockout:
                entry = [0, now, 0.0]
            entry[0] += 1
            entry[1] = now
            over = entry[0] - self.max_failures
            if over >= 0:
                entry[2] = now + min(self.lockout * 2 ** min(over, 12), self.MAX_LOCKOUT)
            self._failures[address] = entry
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
            return over >= 0


def parse_version(text):
    """A version string's leading numbers as a tuple (``"1.2.3rc1"`` -> ``(1, 2, 3)``); None if there are none."""
    numbers = re.match(r"\s*v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in numbers.group(1).split(".")) if numbers else None


def check_client_version(header, minimum):
    """Raise ClientTooOld unless the client's version is at least ``minimum``."""
    version = parse_version(header)
    wanted = parse_version(minimum)
    if version is None or _padded(version, wanted) < _padded(wanted, version):
        shown = header or "none sent"
        raise ClientTooOld(
            f"client version {shown} is older than this server accepts ({minimum}): upgrade hemsync; "
            "your unsynced changes stay on the laptop until then",
            details={"client_version": header, "min_client_version": minimum},
        )


def _padded(version, other):
    return version + (0,) * (len(other) - len(version))


def require_role(user, *roles):
    """Raise RoleForbidden unless the user has one of ``roles``."""
    if user["role"] not in roles:
        raise RoleForbidden(f"a {user['role']} may not do this; it needs: {', '.join(roles)}",
                            details={"role": user["role"], "needs": list(roles)})
