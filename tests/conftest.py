"""Shared fixtures.

`reactor_thread` (session scope): the global Twisted reactor running in a background thread,
for end-to-end tests that talk to a real server over sockets from the test thread.

    def test_x(reactor_thread):
        port = reactor_thread.listen(SomeFactory())      # 127.0.0.1, ephemeral port
        ... talk to ("127.0.0.1", port) with blocking sockets ...
        reactor_thread.stop_listening(port)              # optional; all are closed at the end
        reactor_thread.call(f, *args)                    # run f in the reactor thread, wait

A reactor can run only once per process, so the thread is started on first use and stopped
at the end of the session; every module shares it.
"""

from __future__ import annotations

import threading

import pytest


class ReactorThread:
    def __init__(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self._ports: dict[int, object] = {}
        self._thread = threading.Thread(
            target=reactor.run, kwargs={"installSignalHandlers": False}, name="twisted-reactor", daemon=True
        )
        self._thread.start()
        # Wait until the reactor is actually running.
        started = threading.Event()
        reactor.callFromThread(started.set)
        if not started.wait(10):
            raise RuntimeError("reactor thread did not start")

    def call(self, f, *args, **kwargs):
        """Run f(*args, **kwargs) in the reactor thread; return its result (Deferreds are
        waited for); exceptions are re-raised here."""
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self.reactor, f, *args, **kwargs)

    def listen(self, factory, interface: str = "127.0.0.1") -> int:
        """Listen with `factory` on an ephemeral TCP port; returns the port number."""
        lp = self.call(self.reactor.listenTCP, 0, factory, interface=interface)
        port = lp.getHost().port
        self._ports[port] = lp
        return port

    def stop_listening(self, port: int):
        lp = self._ports.pop(port, None)
        if lp is not None:
            self.call(lp.stopListening)

    def shutdown(self):
        for port in list(self._ports):
            try:
                self.stop_listening(port)
            except Exception:
                pass
        if self.reactor.running:
            self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(10)


_instance: ReactorThread | None = None


@pytest.fixture(scope="session")
def reactor_thread():
    global _instance
    if _instance is None:
        _instance = ReactorThread()
    yield _instance
    _instance.shutdown()


# ---------------------------------------------------------------- the in-process harness
@pytest.fixture
def harness():
    """`harness(**settings)`: an in-process server on a fake clock over a MemoryDisk, with
    clients joined in memory (tests/harness/). All are closed at the end; like the server
    fixtures, the test fails if one logged a traceback."""
    from harness import Harness

    made = []

    def make(**settings):
        h = Harness(**settings)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
    for h in made:
        h.log.check()


# ---------------------------------------------------------------- a server per module
# Modules that need another kind of server define their own `server` fixture.
@pytest.fixture(scope="module")
def server(tmp_path_factory, reactor_thread):
    """`nfsd serve` of a fresh directory on a real socket, in this process (tests/inproc.py:
    the CLI's `build()` in the reactor thread, without the half second a process costs); at
    the end its log must be free of tracebacks."""
    from inproc import InProcessServer

    srv = InProcessServer(reactor_thread, tmp_path_factory.mktemp("export")).start()
    yield srv
    alive = srv.alive()
    srv.stop()
    assert alive, srv.text()
    srv.check()


@pytest.fixture(scope="module")
def client(server):
    """An NFSv4.1 client (root) with a session on `server`."""
    from nfsd.client import NfsClient

    c = NfsClient(*server.address).mount()
    yield c
    c.close()


_dirs = __import__("itertools").count()


def make_tdir(server, c, request):
    """A fresh directory (mode 777) for one test in `server`'s export: (path, handle by `c`)."""
    import os

    name = f"{request.node.originalname}-{next(_dirs)}"
    path = os.path.join(server.directory, name)
    os.mkdir(path)
    os.chmod(path, 0o777)
    return path, c.lookup(name)


@pytest.fixture
def tdir(server, client, request):
    return make_tdir(server, client, request)


@pytest.fixture
def export(tmp_path):
    """An empty export directory for a server of the test's own (see `leased_server`)."""
    d = tmp_path / "export"
    d.mkdir()
    return d


@pytest.fixture
def leased_server(export, reactor_thread):
    """`leased_server(seconds)`: `nfsd serve export --lease-time seconds` in this process
    (tests/inproc.py), stopped at the end; like `server`, its log must be free of tracebacks."""
    from inproc import InProcessServer

    started = []

    def start(lease):
        srv = InProcessServer(reactor_thread, export, lease_time=lease).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
    for srv in started:
        srv.check()


# ---------------------------------------------------------------- PostgreSQL and S3 (scale-out)
_services = None


@pytest.fixture(scope="session")
def services():
    """A real PostgreSQL and a real S3 endpoint (moto) for the session (tests/services.py);
    skips with the reason where they cannot run, fails instead with NFSD_SCALE_TESTS=require."""
    global _services
    import os

    from services import Services, missing

    why = missing()
    if why:
        if os.environ.get("NFSD_SCALE_TESTS") == "require":
            pytest.fail(why)
        pytest.skip(why)
    if _services is None:
        _services = Services()
    yield _services


def pytest_sessionfinish(session, exitstatus):
    global _services
    if _services is not None:
        _services.close()
        _services = None
