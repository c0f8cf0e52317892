"""The errors of the laptop client, one base, each keeping what caused it.

Library code raises these (and lets :class:`schema.errors.HemsyncError` through
when a local write breaks a rule); only the CLI turns them into messages.

    ClientError
    ├── ReplicaError                 the local replica cannot do what was asked
    │   ├── NotLoggedIn              no server, token or user stored yet
    │   ├── RecordNotFound           no such record in this replica
    │   ├── AmbiguousId              an id prefix that more than one record starts with
    │   ├── ConflictNotFound         no such open conflict in this replica
    │   ├── RejectedNotFound         no such rejected change waiting in this replica
    │   ├── OtherUser                login as someone else while changes wait
    │   ├── ReplicaDamaged           the replica file cannot be read (corrupt, not a replica)
    │   └── SyncBusy                 another sync holds the replica's lock
    ├── BadServerUrl                 a server address that is malformed or not encrypted
    └── TransportError               talking to the server failed (.response, if any)
        ├── ConnectionLost           no answer after every retry (network, time-out)
        ├── ProtocolError            an answer that does not follow docs/protocol.md
        └── ServerAnswer             the server answered with an error (.code, .details)
            ├── Unauthorized         401: unknown or missing token
            ├── DeviceRevoked        403 device_revoked: the replica must be wiped
            ├── ClientTooOld         426: upgrade; the outbox is kept
            ├── RequestRefused       any other 4xx
            └── ServerFailed         5xx (or 429) after every retry
"""

__all__ = [
    "ClientError",
    "ReplicaError",
    "NotLoggedIn",
    "RecordNotFound",
    "AmbiguousId",
    "ConflictNotFound",
    "RejectedNotFound",
    "OtherUser",
    "ReplicaDamaged",
    "SyncBusy",
    "BadServerUrl",
    "TransportError",
    "ConnectionLost",
    "ProtocolError",
    "ServerAnswer",
    "Unauthorized",
    "DeviceRevoked",
    "ClientTooOld",
    "RequestRefused",
    "ServerFailed",
]


class ClientError(Exception):
    """Base of every laptop-client error."""


class ReplicaError(ClientError):
    """The local replica cannot do what was asked."""


class NotLoggedIn(ReplicaError):
    """No server, token or user is stored: run `hemsync login` first."""


class RecordNotFound(ReplicaError):
    """The record is not in this replica."""


class AmbiguousId(ReplicaError):
    """More than one record's id starts with the prefix given: type more of it."""


class ConflictNotFound(ReplicaError):
    """There is no open conflict with that id in this replica."""


class RejectedNotFound(ReplicaError):
    """There is no rejected change with that id waiting (fixed, discarded, or never rejected)."""


class OtherUser(ReplicaError):
    """A login as another user or device while local changes still wait to be sent."""


class ReplicaDamaged(ReplicaError):
    """The replica file is damaged or is not a replica: SQLite cannot read it."""


class SyncBusy(ReplicaError):
    """Another sync (in this or another process) holds the replica's sync lock."""


class BadServerUrl(ClientError):
    """A server address without a scheme or host, or plain http:// to a server that is not this computer."""


class TransportError(ClientError):
    """Talking to the server failed; ``response`` is the last HTTP response, if any."""

    def __init__(self, message, *, response=None):
        super().__init__(message)
        self.message = message
        self.response = response


class ConnectionLost(TransportError):
    """The server could not be reached or stopped answering, after every retry."""


class ProtocolError(TransportError):
    """The server's answer does not follow the protocol (docs/protocol.md)."""


class ServerAnswer(TransportError):
    """The server answered with an error in its JSON error shape."""

    def __init__(self, message, *, code="error", details=None, status=None, response=None):
        super().__init__(message, response=response)
        self.code = code
        self.details = details or {}
        self.status = status


class Unauthorized(ServerAnswer):
    """The server does not know this token (401): log in again."""


class DeviceRevoked(ServerAnswer):
    """This device is revoked (403 device_revoked): its replica must be wiped.

    ``wiped`` is set by the sync once the replica's patient data is deleted.
    """

    wiped = None


class ClientTooOld(ServerAnswer):
    """The server no longer accepts this client version (426): upgrade; nothing is lost."""


class RequestRefused(ServerAnswer):
    """The server refused the request (a 4xx other than the ones above)."""


class ServerFailed(ServerAnswer):
    """The server failed (5xx) or kept asking to wait (429), after every retry."""
