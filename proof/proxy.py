"""A loopback TCP proxy that counts every byte, and on request cuts lines or calls a hook mid-transfer.

It sits between a laptop's SyncClient and the server: what it counts is what
crossed the socket, headers included. ``plan(n)`` says, for the n-th
connection (0-based), after how many bytes up (client to server) or down
(server to client) the line goes dead (``{"up": 700}``), or where in which
request or answer (``{"target": ("down", "GET /v1/pull", 1, 0.4)}``: 40 % into
the answer to the connection's first pull, by its Content-Length). A cut always
drops at least one byte, so every cut it reports landed in the middle of a
transfer, and it notes which request was in flight. ``hook(direction, flow, data)`` runs before each chunk
is forwarded (the fault trials kill the server from there); when it returns a
number, that many bytes of the chunk go through and the line goes dead.
"""

import dataclasses
import re
import socket
import threading

__all__ = ["LoopbackProxy", "Cut", "Flow", "message_length", "hang_up"]

REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) (/[^ ?]*)\S* HTTP/1\.[01]\r\n")


@dataclasses.dataclass
class Cut:
    """A line cut: which way, after how many bytes of the connection, during which request."""

    direction: str
    offset: int
    request: str
    request_offset: int


@dataclasses.dataclass
class Flow:
    """One direction of one proxied connection."""

    connection: int
    direction: str
    sent: int = 0
    request: str = ""        # the request in flight on this connection ("POST /v1/push")
    request_start: int = 0   # where the request (up) or its answer (down) began in this flow
    answers: int = -1        # down: the up offset of the request being answered
    limit: int | None = None  # cut once this many bytes went this way
    seen: dict = dataclasses.field(default_factory=dict)  # up: requests seen on this connection, by kind
    server_side_port: int = 0  # the proxy's own port on its line to the server (which process serves it)


class LoopbackProxy:
    """127.0.0.1:<port> -> 127.0.0.1:<target_port>, counting bytes; ``url`` is what a client talks to."""

    def __init__(self, target_port, *, plan=None, hook=None):
        self.target_port = target_port
        self.plan = plan or (lambda n: {})
        self.hook = hook
        self.up = self.down = 0
        self.connections = 0
        self.cuts = []
        self.requests = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        self._threads = []
        thread = threading.Thread(target=self._accept, daemon=True, name="proxy-accept")
        thread.start()

    def counts(self):
        """``(bytes up, bytes down)`` so far."""
        with self._lock:
            return self.up, self.down

    def stop(self):
        """Stop accepting connections."""
        self._stopped = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                hang_up((client,))  # the server is down: the client sees a refused/closed line
                continue
            with self._lock:
                number = self.connections
                self.connections += 1
            limits = self.plan(number) or {}
            pair = (client, upstream)
            port = upstream.getsockname()[1]
            up = Flow(number, "up", limit=limits.get("up"), server_side_port=port)
            down = Flow(number, "down", limit=limits.get("down"), server_side_port=port)
            target = limits.get("target")
            for source, sink, flow in ((client, upstream, up), (upstream, client, down)):
                threading.Thread(target=self._pump, args=(source, sink, flow, up, target, pair),
                                 daemon=True, name=f"proxy-{number}-{flow.direction}").start()

    def _pump(self, source, sink, flow, up, target, pair):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                if flow.direction == "up":
                    match = REQUEST_LINE.match(data)
                    if match:
                        flow.request = f"{match.group(1).decode()} {match.group(2).decode()}"
                        flow.request_start = flow.sent
                        flow.seen[flow.request] = flow.seen.get(flow.request, 0) + 1
                        with self._lock:
                            self.requests.append(flow.request)
                        _aim(flow, up, target, data)
                else:
                    if _down_view(flow, up):
                        _aim(flow, up, target, data)
                if self.hook is not None:
                    keep = self.hook(flow.direction, flow, data)
                    if keep is not None:  # the hook says: forward this much, then the line is dead
                        sink.sendall(data[:keep])
                        with self._lock:
                            self._count(flow.direction, keep)
                        hang_up(pair)
                        return
                limit = flow.limit
                if limit is not None and flow.sent + len(data) > limit:
                    keep = limit - flow.sent
                    sink.sendall(data[:keep])
                    with self._lock:
                        self._count(flow.direction, keep)
                        self.cuts.append(Cut(flow.direction, limit, flow.request, limit - flow.request_start))
                    flow.sent += keep
                    hang_up(pair)  # the line goes dead both ways
                    return
                sink.sendall(data)
                flow.sent += len(data)
                with self._lock:
                    self._count(flow.direction, len(data))
        except OSError:
            hang_up(pair)

    def _count(self, direction, n):
        if direction == "up":
            self.up += n
        else:
            self.down += n


def _down_view(flow, up):
    """Label the down flow with the request in flight; True when this chunk starts its answer."""
    if flow.answers != up.request_start or flow.request != up.request:
        flow.request, flow.answers = up.request, up.request_start
        flow.request_start = flow.sent  # this answer starts here in the down stream
        return True
    return False


CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def message_length(data):
    """Headers plus Content-Length of the HTTP message that starts with this chunk."""
    head_end = data.find(b"\r\n\r\n")
    length = CONTENT_LENGTH.search(data, 0, head_end if head_end >= 0 else len(data))
    return (head_end + 4 if head_end >= 0 else len(data)) + (int(length.group(1)) if length else 0)


def _aim(flow, up, target, data):
    """At the start of the targeted request or answer, set the flow's cut a fraction into it."""
    if not target:
        return
    direction, request, nth, fraction = target
    if direction != flow.direction or flow.request != request or up.seen.get(request) != nth:
        return
    total = message_length(data)
    if total > 1:
        flow.limit = flow.sent + max(1, min(total - 1, int(fraction * total)))


def hang_up(ends):
    """Drop a connection both ways, so both peers see the line go dead at once."""
    # shutdown() first: close() alone waits for the other pump's blocked recv and sends no FIN.
    for end in ends:
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()
