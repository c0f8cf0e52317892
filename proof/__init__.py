"""The proof: figures anyone can re-run, and trials that try to break sync.

``python -m proof.bench``  throughput and bytes on the wire (``make bench``)
``python -m proof.load``   many laptops syncing at once (``make load``)
``python -m proof.faults`` seeded fault trials: cut lines, killed clients and servers (``make faults``)
``python -m proof.fuzz``   schemathesis and malformed change batches (``make fuzz``)

Every harness drives the real server as ``make run`` serves it (cheroot, in a
subprocess, on a free loopback port) and real laptop replicas, over real HTTP.
Nothing here is imported by the server or the client.
"""

__all__ = []
