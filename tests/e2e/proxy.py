"""A loopback TCP proxy that cuts connections after N bytes, to test sync on a bad network.

``CuttingProxy(target_port, up=N)`` drops a connection once N bytes went from
the client to the server (a push cut mid-request); ``down=N`` once N bytes came
back (an answer cut mid-body, after the server did the work). Only the first
``cuts`` connections are cut; later ones pass through, so a retry gets through.
"""

import socket
import threading

from proof.proxy import hang_up

__all__ = ["CuttingProxy"]


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to the target port, cutting the first ``cuts`` connections."""

    def __init__(self, target_port, *, up=None, down=None, cuts=1):
        self.target_port, self.limits, self.cuts_left = target_port, {"up": up, "down": down}, cuts
        self.cut = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        """Stop accepting connections."""
        self._stopped = True
        self._listener.close()

    def _accept(self):
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                cutting = self.cuts_left > 0
                self.cuts_left -= cutting
            pair = (client, upstream)
            for source, sink, direction in ((client, upstream, "up"), (upstream, client, "down")):
                limit = self.limits[direction] if cutting else None
                threading.Thread(target=self._pump, args=(source, sink, limit, pair), daemon=True).start()

    def _pump(self, source, sink, limit, pair):
        sent = 0
        try:
            while True:
                data = source.recv(4096)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: limit - sent])
                    with self._lock:
                        self.cut += 1
                    hang_up(pair)  # the line goes dead both ways
                    return
                sink.sendall(data)
                sent += len(data)
        except OSError:
            hang_up(pair)

