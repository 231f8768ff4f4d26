"""`nfsd serve` in the test process: `build(Config(...))` in the shared reactor thread, on a
real socket, over a real directory.

Starting `python -m nfsd serve` costs about half a second (an interpreter, imports); most
tests that talk to a server over sockets need neither a separate process nor the CLI, and get
this instead: the same `build()` the CLI calls, with the options the tests' ServerProcess
passes (`--bind 127.0.0.1 --port 0 --no-root-squash --insecure`). Tests that need kill -9,
signals, the CLI or its output keep `server_proc.ServerProcess`.

The interface is ServerProcess's (`address`, `directory`, `text()`, `alive()`, `stop()`), so
fixtures can hand out either. The log is what the `nfsd` loggers record while it runs
(`harness.logs.LogCapture`, every thread: the reactor's and the pool's); a server fixture
fails its test if it holds a traceback. Other in-process servers running at the same time log
to the same loggers, so `text()` may show their lines too: assert on lines that name this
server's clients or files.
"""

from __future__ import annotations

import os

from harness.logs import LogCapture
from nfsd.exports import Options
from nfsd.server import Config, build

TRUSTED = Options(rw=True, root_squash=False, secure=False)


class InProcessServer:
    def __init__(self, reactor_thread, directory, **config):
        """`config`: `nfsd.server.Config` fields (lease_time=, inline_fsync=, ...)."""
        self.rt = reactor_thread
        self.directory = None if directory is None else str(directory)  # None: exports_file=
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
        config.setdefault("export_options", TRUSTED)
        self.config = Config(directory=self.directory, bind="127.0.0.1", port=0, **config)
        self.log = LogCapture()
        self.running = None

    def start(self):
        self.log.start()
        try:
            self.running = self.rt.call(build, self.config, self.rt.reactor)
        except BaseException:
            self.log.stop()
            raise
        return self

    @property
    def address(self):
        return self.running.address

    @property
    def server(self):
        """The NfsServer (its `store`, `exports`, ...): read it with `call`."""
        return self.running.server

    @property
    def factory(self):
        """The RpcFactory (its `protocols` are the open connections)."""
        return self.running.port.factory

    def call(self, fn, *args, **kw):
        """Run fn in the reactor thread (where the server's state lives) and return its result."""
        return self.rt.call(fn, *args, **kw)

    def alive(self) -> bool:
        return self.running is not None and self.rt.reactor.running

    def text(self) -> str:
        return self.log.text()

    def stop(self):
        """Stop listening, close every connection (a process's exit would), close the backend."""
        if self.running is not None:
            running, self.running = self.running, None

            def stop():
                for factory in (running.port.factory, running.server.callbacks.factory):
                    for proto in list(factory.protocols):
                        proto.transport.abortConnection()
                return running.stop()
            try:
                self.rt.call(stop)
            finally:
                self.log.stop()

    def check(self):
        """What a server fixture asserts at the end: no traceback was logged."""
        self.log.check()
