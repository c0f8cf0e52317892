"""Serving the pages: cheroot on 127.0.0.1 only (never another address), one launch secret per start."""

import contextlib
import html
import os
import socket
import threading

from cheroot import wsgi

from ..files import PRIVATE_FILE, private_directory
from . import create_app, guard

__all__ = ["HOST", "THREADS", "Listener"]

HOST = "127.0.0.1"
#: A doctor's browser opens a few connections at once; the replica is one file either way.
THREADS = 4


class Listener:
    """The pages of the replica at ``replica_path`` on 127.0.0.1:``port`` (0: a free port), not yet started."""

    def __init__(self, replica_path, port=0):
        if not port:
            with socket.socket() as probe:  # the app needs its port (the Host check) before it listens
                probe.bind((HOST, 0))
                port = probe.getsockname()[1]
        self.port = port
        self.secret = guard.new_secret()
        self.app = create_app(replica_path, port=port, secret=self.secret)
        self.server = wsgi.Server((HOST, port), self.app, numthreads=THREADS)

    @property
    def url(self):
        """The launch link: opening it starts the browser's session."""
        return guard.launch_url(self.port, self.secret)

    def launch_file(self, folder):
        """Write an owner-only page that sends the browser on to the launch link; return its path.

        The browser opens this file rather than the link itself: a program's
        command line (the browser's, started with a URL) is readable by every
        local user, and the link holds the secret.
        """
        private_directory(folder)
        path = os.path.join(folder, f"hemsync-ui-{self.port}.html")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # made anew, owner-only from its first byte
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        link = html.escape(self.url)
        with os.fdopen(descriptor, "w", encoding="utf-8") as page:
            page.write(f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={link}">'
                       f'<title>hemsync</title><a href="{link}">hemsync</a>\n')
        return path

    def serve(self):
        """Serve until stopped (Ctrl-C, or :meth:`stop` from another thread)."""
        self.server.safe_start()

    def start(self):
        """Bind and serve in cheroot's own threads (tests); :meth:`stop` ends it."""
        self.server.prepare()
        threading.Thread(target=self.server.serve, daemon=True).start()

    def stop(self):
        """Stop serving."""
        self.server.stop()
