"""Run `python -m nfsd serve` as a real process for end-to-end tests (and kill -9 it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

_LINE = re.compile(rb"nfsd: serving .* on ([0-9.]+):(\d+)")
# The tests' clients are root (uid 0) and connect from ports above 1024: `nfsd serve DIR` gets
# these unless a test asks for the defaults (`trusted=False`).
TRUSTED = ("--no-root-squash", "--insecure")


class ServerProcess:
    def __init__(self, directory, *extra, port=0, state_dir=None, env=None, trusted=True):
        self.directory = None if directory is None else str(directory)
        self.extra = [str(e) for e in extra]
        if trusted and directory is not None:
            self.extra += TRUSTED
        self.port = port
        self.state_dir = state_dir
        self.env = env
        self.proc = None
        self.log = bytearray()
        self._reader = None

    def start(self, timeout=30):
        cmd = [sys.executable, "-m", "nfsd", "serve", *([self.directory] if self.directory else []),
               "--bind", "127.0.0.1", "--port", str(self.port), *self.extra]
        if self.state_dir:
            cmd += ["--state-dir", str(self.state_dir)]
        env = dict(os.environ, **(self.env or {}))
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env)
        ready = threading.Event()
        found = {}

        def pump():
            for line in self.proc.stdout:
                self.log += line
                m = _LINE.search(line)
                if m and not ready.is_set():
                    found["port"] = int(m.group(2))
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=pump, daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or "port" not in found:
            self.stop()
            raise RuntimeError("server did not start:\n" + self.log.decode(errors="replace"))
        # Restarts reuse the port so that clients reconnect to the same address.
        self.port = found["port"]
        return self

    @property
    def address(self):
        return "127.0.0.1", self.port

    def kill9(self):
        """Crash the server: SIGKILL, no chance to flush or clean up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        if self._reader:
            self._reader.join(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if self._reader:
            self._reader.join(10)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log.decode(errors="replace")
