"""nfsd.reactor: `nfsd serve`'s event loop dispatches connections itself, without Twisted's
per-event log context, and still serves TCP, timers and threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent("""
    import socket, sys, traceback
    from nfsd.reactor import install
    assert install()
    from twisted.internet import protocol, reactor, threads
    seen = {}

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            seen["stack"] = [(f.filename, f.name) for f in traceback.extract_stack()]
            self.transport.write(data)

    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Echo), interface="127.0.0.1")

    def client():  # in a worker thread: a real socket to the reactor's listener
        with socket.create_connection(("127.0.0.1", port.getHost().port)) as s:
            s.sendall(b"ping")
            return s.recv(4)

    def done(reply):
        seen["reply"] = reply
        reactor.stop()

    reactor.callLater(0, lambda: threads.deferToThread(client).addBoth(done))
    reactor.run()
    names = [n for _, n in seen["stack"]]
    files = [f for f, n in seen["stack"] if n == "doPoll"]
    print(seen["reply"], "callWithLogger" in names, files[0].endswith("nfsd/reactor.py"))
""")


def test_connections_are_dispatched_by_nfsds_reactor():
    r = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["b'ping'", "False", "True"]


def test_nfsd_serve_runs_on_it():
    """The command installs it before anything imports the global reactor."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from nfsd import cli, server  # what `nfsd serve` imports first
        from nfsd.reactor import Reactor, install
        assert "twisted.internet.reactor" not in sys.modules
        assert install()
        from twisted.internet import reactor
        print(type(reactor) is Reactor, reactor.doIteration.__func__ is Reactor.doPoll)
    """)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]
