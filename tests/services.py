"""Real PostgreSQL and a real S3 endpoint for the tests of the shared-namespace backend.

* `PgServer`: Debian's PostgreSQL (`initdb` + `pg_ctl`) in a temporary directory, listening on
  a unix socket only; as root it runs as the `postgres` user (`runuser`). `stop()`/`start()`
  make a real outage (its data stays). Each test gets its own schema (`namespace_url`), so a
  fresh namespace costs a CREATE SCHEMA, not a database.
* `S3Server`: `moto_server` on 127.0.0.1, and in front of it a TCP relay (`S3Server.endpoint`)
  that `cut()` makes refuse and drop connections and `mend()` restores: an outage of the object
  store without losing what moto keeps in memory. Each test gets its own bucket.

Both are started once per test session (`services` fixture in tests/conftest.py) and stopped at
its end (`pg_ctl -m immediate stop`). Where the packages are missing the tests skip with the
reason; `NFSD_SCALE_TESTS=require` (CI) turns that into a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

_ids = itertools.count(1)


def missing() -> str | None:
    """Why these services cannot run here, or None."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") and not shutil.which("initdb"):
        return "PostgreSQL is not installed (apt-get install postgresql)"
    for mod, pkg in (("psycopg", "psycopg[binary]"), ("boto3", "boto3"), ("moto", "moto[server]")):
        try:
            __import__(mod)
        except ImportError:
            return f"{pkg} is not installed (pip install -e '.[test]')"
    return None


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nfsd-pg-")
        self.data = os.path.join(self.dir, "data")
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres")
        self._run([_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync"])
        self.start()

    def _run(self, cmd):
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError(f"{cmd}: {r.stdout}{r.stderr}")

    def start(self):
        self._run([_bin("pg_ctl"), "-D", self.data, "-w", "-l", os.path.join(self.dir, "log"),
                   "-o", f"-k {self.dir} -c listen_addresses='' -c fsync=off "
                         "-c max_connections=200", "start"])

    def stop(self, mode: str = "fast"):
        self._run([_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"])

    def url(self, dbname: str = "postgres", schema: str | None = None) -> str:
        u = f"postgresql:///{dbname}?host={self.dir}&user=postgres"
        return u + f"&options=-csearch_path%3D{schema}" if schema else u

    def namespace_url(self) -> str:
        """A new empty schema, as a URL whose connections use it."""
        import psycopg

        schema = f"ns{next(_ids)}_{os.getpid()}"
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}")
        return self.url(schema=schema)

    def close(self):
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class _Relay:
    """127.0.0.1:port -> target, one thread pair per connection; `cut()` drops every
    connection and refuses new ones until `mend()`."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                s = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a, b):
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def mend(self):
        self.up = True

    def close(self):
        self.cut()
        self.listener.close()


class S3Server:
    def __init__(self):
        self.port = free_port()
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        cmd = [moto] if os.path.exists(moto) else [sys.executable, "-m", "moto.server"]
        self.proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.05)
        self.relay = _Relay(("127.0.0.1", self.port))
        self.endpoint = f"http://127.0.0.1:{self.relay.port}"
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}",
                            region_name="us-east-1")

    def new_bucket(self) -> str:
        name = f"nfsd-{next(_ids)}-{os.getpid()}"
        self.client().create_bucket(Bucket=name)
        return name

    def close(self):
        self.relay.close()
        self.proc.terminate()
        self.proc.wait(30)


class Services:
    def __init__(self):
        self.pg = PgServer()
        try:
            self.s3 = S3Server()
        except BaseException:
            self.pg.close()
            raise

    def namespace(self) -> tuple[str, str]:
        """(meta URL, data URL) of a new formatted namespace."""
        from backend import format_backend

        meta, data = self.pg.namespace_url(), f"s3://{self.s3.new_bucket()}/ns"
        format_backend(meta, data)
        return meta, data

    def close(self):
        try:
            self.s3.close()
        finally:
            self.pg.close()
