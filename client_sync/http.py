"""The HTTP client of the sync protocol (docs/protocol.md), polite on bad networks.

Every call has a time-out; connection errors, time-outs, answers cut off in the
middle, 5xx and 429 are retried with exponential backoff (a ``Retry-After``
from the server wins: at least that long, and up to half as long again, so that
laptops a saturated server turned away do not come back in step). Retrying is safe for every call: the server de-duplicates
pushed changes and access-log entries by id, and pull and digest only read.
Answers are asked for brotli- or gzip-compressed; request bodies are brotli-compressed
once the handshake said the server reads brotli, else gzip-compressed (make bench: bytes).
Failures become the typed errors of :mod:`client_sync.errors`, which keep the
last response.

Patient data only travels encrypted: a server address must be ``https://``
(certificates verified, requests' default), except plain ``http://`` to this
computer itself (loopback: 127.0.0.0/8, ::1, localhost), where nothing crosses
a network. There is deliberately no switch to allow more: one left on in the
field would send patient data in the clear.
"""

import email.utils
import gzip
import ipaddress
import json
import random
import time
import urllib.parse

import brotli
import requests

from schema.clock import now_text

from . import __version__
from .errors import (
    BadServerUrl,
    ClientTooOld,
    ConnectionLost,
    DeviceRevoked,
    ProtocolError,
    RequestRefused,
    ServerFailed,
    Unauthorized,
)

__all__ = ["SyncClient", "DEFAULT_TIMEOUT", "check_server_url", "split_page"]

#: (connect, read) seconds: a field laptop on a bad line must not hang for ever.
DEFAULT_TIMEOUT = (5, 60)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# An answer cut off mid-body shows up as one of these (or as JSON that does not parse).
RETRYABLE_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class SyncClient:
    """One device's connection to the sync server.

    ``session`` may be injected (tests, proxies); ``sleep`` too, so tests of the
    backoff do not wait. ``client_version`` is what ``X-Hemsync-Client`` says.
    """

    def __init__(self, base_url, token, session=None, *, timeout=DEFAULT_TIMEOUT, retries=4,
                 backoff=0.5, max_backoff=30.0, sleep=time.sleep, client_version=__version__):
        self.base_url = check_server_url(base_url)
        self.token = token
        self.session = session or requests.Session()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.client_version = client_version
        #: The last time the server asked this client to wait (429/503 with Retry-After), or None.
        self.asked_to_wait = None
        #: How request bodies are compressed: gzip until a handshake says the server reads brotli.
        self.body_encoding = "gzip"

    def handshake(self, pending, rejected):
        """Say who we are and what waits; learn who the server says we are (and whether it reads brotli)."""
        answer = self._call("POST", "/v1/handshake", body={"pending": pending, "rejected": rejected})
        encodings = answer.get("content_encodings") if isinstance(answer, dict) else None
        # A server from before brotli does not name it: gzip, which every server reads.
        self.body_encoding = "br" if isinstance(encodings, list) and "br" in encodings else "gzip"
        return answer

    def push_access_log(self, entries):
        """Send openings of patient records logged on the laptop."""
        return self._call("POST", "/v1/access-log", body={"entries": entries})

    def push(self, changes, pending):
        """Send a batch of changes; ``pending`` is how many still wait after it."""
        return self._call("POST", "/v1/push", body={"pending": pending, "changes": changes})

    def pull(self, cursor=None, limit=None):
        """One page of the change feed after ``cursor`` (None: from the start).

        Besides the server's keys, ``record_texts`` holds each record's JSON text as the
        page shipped it (None when the page is not laid out as this server writes it):
        the replica stores that text as it is instead of encoding the record again.
        """
        params = {k: v for k, v in (("cursor", cursor), ("limit", limit)) if v is not None}
        return self._call("GET", "/v1/pull", params=params, parse=split_page)

    def digest(self):
        """The server's digest of this device's scope (see "Integrity check" in docs/protocol.md)."""
        return self._call("GET", "/v1/digest")

    def fetch(self, keys):
        """The server's current state of some records, by ``"type/id"``."""
        return self._call("POST", "/v1/fetch", body={"records": list(keys)})

    def _call(self, method, path, *, body=None, params=None, parse=None):
        headers = {
            "Authorization": f"Bearer {self.token}",
            "X-Hemsync-Client": self.client_version,
            "Accept": "application/json",
            "Accept-Encoding": "br, gzip",
        }
        data = None
        if body is not None:
            data = _compress(json.dumps(body).encode("utf-8"), self.body_encoding)
            headers.update({"Content-Type": "application/json", "Content-Encoding": self.body_encoding})
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            last_try = attempt == self.retries
            try:
                response = self.session.request(method, url, data=data, params=params, headers=headers,
                                                timeout=self.timeout)
                if response.status_code in RETRYABLE_STATUSES and not last_try:
                    self.sleep(self._delay(attempt, response))
                    continue
                if response.status_code >= 400:
                    raise _error_for(response)
                try:
                    # JSON on the wire is UTF-8 (RFC 8259): a page is not handed to a charset guess.
                    return parse(response.content.decode("utf-8")) if parse else response.json()
                except ValueError as exc:  # a body cut short or garbled on the way
                    if last_try:
                        raise ProtocolError(f"{method} {path}: the answer is not JSON", response=response) from exc
            except RETRYABLE_ERRORS as exc:
                if last_try:
                    raise ConnectionLost(
                        f"no answer from {self.base_url} ({type(exc).__name__}) after {self.retries + 1} tries: "
                        "your changes are kept and go out at the next sync") from exc
            self.sleep(self._delay(attempt, None))
        raise AssertionError("unreachable: the last try returns or raises")

    def _delay(self, attempt, response):
        """Seconds before the next try: the server's Retry-After, else backoff with jitter."""
        if response is not None:
            after = _retry_after(response.headers.get("Retry-After"))
            if after is not None:
                after = min(after, self.max_backoff)
                self.asked_to_wait = {"status": response.status_code, "seconds": after,
                                      "at": now_text("auto")}
                # At least what the server asked, and up to half as long again: laptops told
                # the same Retry-After by a saturated server must not all come back in step.
                return after + random.uniform(0, after / 2)
        # Full jitter: several laptops back online at once must not retry in step.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt))


#: Request bodies: a push of 100 changes is ~140 kB of JSON; brotli's quality 5 is a few ms of it.
BROTLI_QUALITY = 5


def _compress(data, encoding):
    if encoding == "br":
        return brotli.compress(data, quality=BROTLI_QUALITY, lgwin=22)
    return gzip.compress(data)


#: How the server's page starts (server.pull.Page.to_json): its records first, each as stored.
PAGE_START = '{"records":['
_scan = json.JSONDecoder().raw_decode


def split_page(text):
    """A pull page's JSON, with ``record_texts``: the text of each of its records as shipped (see pull).

    Each record is parsed where it stands in the page (``raw_decode``), so its text is
    the slice it was parsed from. A page laid out otherwise (another server, spaces)
    is parsed whole, its ``record_texts`` None; a page that is not JSON raises ValueError.
    """
    try:
        page = _split(text)
    except (ValueError, IndexError):
        page = None
    if page is None:
        page = json.loads(text)
        if isinstance(page, dict):
            page["record_texts"] = None
    return page


def _split(text):
    """The page split record by record when it is laid out as the server writes it, else None."""
    if not text.startswith(PAGE_START):
        return None
    records, texts, at = [], [], len(PAGE_START)
    if text[at] != "]":
        while True:
            record, end = _scan(text, at)
            records.append(record)
            texts.append(text[at:end])
            at = end + 1
            if text[end] != ",":
                at = end
                break
    if text[at] != "]" or not text.startswith(',"', at + 1):
        return None
    page = json.loads("{" + text[at + 2:])
    if "records" in page or "record_texts" in page:
        return None  # json.loads would keep the last of two such keys: parse it whole
    return {"records": records, **page, "record_texts": texts}


def check_server_url(url):
    """The server address without its trailing slash; BadServerUrl when it is malformed or not encrypted."""
    text = (url or "").strip()
    if "://" not in text:
        guess = urllib.parse.urlsplit(f"//{text}").hostname or ""
        scheme = "http" if _is_loopback(guess) else "https"
        raise BadServerUrl(f"{text!r} is not a server address: write it with its scheme, e.g. {scheme}://{text}")
    parts = urllib.parse.urlsplit(text)
    try:
        host, _ = parts.hostname, parts.port  # .port raises on a port that is not a number
    except ValueError as exc:
        raise BadServerUrl(f"{text!r} is not a server address: {exc}") from exc
    if not host:
        raise BadServerUrl(f"{text!r} names no server: write it as https://HOST")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)):
        return text.rstrip("/")
    if parts.scheme == "http":
        secure = urllib.parse.urlunsplit(parts._replace(scheme="https")).rstrip("/")
        raise BadServerUrl(f"refusing plain http:// to {host}: patient data must travel encrypted; "
                           f"use {secure}")
    raise BadServerUrl(f"{text!r}: a hemsync server is reached over https://, not {parts.scheme}://")


def _is_loopback(host):
    """Whether ``host`` is this computer (localhost or a loopback address), where http:// crosses no network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(value):
    """Seconds from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _error_for(response):
    """The typed error for an error answer (HTTP 400 or more), from its JSON error shape when it has one."""
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details") or {}
    except (ValueError, KeyError, TypeError):
        code, message, details = "error", (response.text or response.reason or "")[:300], {}
    status = response.status_code
    if status == 401:
        kind = Unauthorized
    elif code == "device_revoked":
        kind = DeviceRevoked
    elif status == 426 or code == "client_too_old":
        kind = ClientTooOld
    elif status >= 500 or status == 429:
        kind = ServerFailed
    else:
        kind = RequestRefused
    return kind(f"{message} ({code}, HTTP {status})", code=code, details=details, status=status, response=response)
