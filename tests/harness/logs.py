"""What an in-process server logs, kept for the test that started it.

A subprocess server's log is its stdout; the tests read it (`"discarded unpublished file" in
server.text()`) and fail when it holds a traceback. In-process servers log through the
`nfsd` loggers of the test process, so `LogCapture` collects those records instead, and also
Twisted's own error events (an unhandled error in a Deferred is logged there, not through
`logging`). `thread=` keeps only the records of one thread: the harness runs the server in
the test's thread, and a server in the reactor thread logs there (and in its pool threads).
"""

from __future__ import annotations

import logging
import threading

from twisted.logger import formatEvent, globalLogPublisher

FORMAT = "%(name)s %(levelname)s %(message)s"
_active: list = []  # live captures; the logger is at INFO while there are any
_saved_level: list = []


class LogCapture(logging.Handler):
    def __init__(self, threads=None, logger: str = "nfsd"):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(FORMAT))
        self.threads = threads  # None: every thread; else a set of thread idents
        self.lines: list[str] = []
        self.errors: list[str] = []  # tracebacks and Twisted error events
        self._logger = logging.getLogger(logger)

    def start(self):
        if not _active:
            _saved_level[:] = [self._logger.level]
            if self._logger.getEffectiveLevel() > logging.INFO:
                self._logger.setLevel(logging.INFO)
        _active.append(self)
        self._logger.addHandler(self)
        globalLogPublisher.addObserver(self._twisted)
        return self

    def stop(self):
        self._logger.removeHandler(self)
        if self in _active:
            _active.remove(self)
            if not _active and _saved_level:
                self._logger.setLevel(_saved_level[0])
        try:
            globalLogPublisher.removeObserver(self._twisted)
        except ValueError:
            pass

    def _mine(self, ident) -> bool:
        return self.threads is None or ident in self.threads

    def emit(self, record):
        if not self._mine(record.thread):
            return
        text = self.format(record)
        self.lines.append(text)
        if record.exc_info or "Traceback" in text:
            self.errors.append(text)

    def _twisted(self, event):
        if not self._mine(threading.get_ident()):
            return
        if event.get("isError") or event.get("log_failure") is not None:
            f = event.get("log_failure")
            self.errors.append(formatEvent(event) + ("\n" + f.getTraceback() if f else ""))

    def text(self) -> str:
        return "\n".join(self.lines + self.errors)

    def check(self):
        """Fail if anything logged a traceback (what a server fixture asserts at the end)."""
        assert not self.errors, "the server logged errors:\n" + "\n".join(self.errors)
