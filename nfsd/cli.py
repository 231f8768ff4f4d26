"""The `nfsd` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _serve(args) -> int:
    from .reactor import install

    install()
    from twisted.internet import reactor

    from .server import Config, build

    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    what_given = [w for w in (args.directory, args.exports, args.meta) if w is not None]
    if len(what_given) != 1:
        print("nfsd serve: give a directory, or --exports FILE, or --meta URL (one of them)",
              file=sys.stderr)
        return 2
    if args.meta is not None and not (args.data and args.frontend_id and args.spool):
        print("nfsd serve --meta URL also needs --data s3://BUCKET/PREFIX, --frontend-id NAME "
              "and --spool DIR", file=sys.stderr)
        return 2
    quick = (args.allow, args.ro, args.no_root_squash, args.insecure, args.anonuid, args.anongid)
    if args.exports is not None and quick != (None, False, False, False, None, None):
        print("nfsd serve: --allow, --ro, --no-root-squash, --insecure, --anonuid and --anongid "
              "are for `nfsd serve DIR`; with --exports FILE the file says it", file=sys.stderr)
        return 2
    from .exports import Options

    options = Options(rw=not args.ro, root_squash=not args.no_root_squash,
                      anonuid=65534 if args.anonuid is None else args.anonuid,
                      anongid=65534 if args.anongid is None else args.anongid,
                      secure=not args.insecure)
    cfg = Config(
        directory=os.path.abspath(args.directory) if args.directory else None,
        exports_file=args.exports, bind=args.bind, port=args.port,
        state_dir=args.state_dir, lease_time=args.lease_time, grace_time=args.grace_time,
        retire_after=args.retire_after, delegations=not args.no_delegations,
        max_connections=args.max_connections, idle_timeout=args.idle_timeout,
        max_clients=args.max_clients, max_opens_per_client=args.max_opens_per_client,
        metrics=args.metrics, inline_fsync=args.inline_fsync_ms / 1000,
        allow=tuple(args.allow or ()), export_options=options, meta=args.meta,
        data=args.data, frontend_id=args.frontend_id, spool=args.spool,
        s3_endpoint=args.s3_endpoint, server_copy=not args.no_server_copy,
        copy_async=int(args.copy_async_mib * (1 << 20)), max_async_copies=args.max_async_copies,
    )
    from backend import BadSpec
    from backend.interface import BackendError

    try:
        running = build(cfg, reactor)
    except (OSError, ValueError, BadSpec, BackendError) as e:
        print(f"nfsd: cannot serve {args.directory or args.exports or 'the namespace'}: {e}",
              file=sys.stderr)
        return 1
    running.on_fenced = reactor.stop
    host, port = running.address
    what = cfg.directory or ", ".join(e.directory if cfg.meta else e.path
                                      for e in running.server.exports.exports)
    # Who may do what, as exports(5) lines: the operator sees exactly what is exported.
    for e in running.server.exports.exports:
        print(f"nfsd: export: {e.exports_line()}", flush=True)
    if running.metrics_port is not None:
        a = running.metrics_port.getHost()
        print(f"nfsd: metrics on http://{a.host}:{a.port}/metrics", flush=True)
    # The last line: everything is listening. Tests and scripts wait for it and read the port
    # from it (with --port 0), and the lines above are then complete.
    print(f"nfsd: serving {what} on {host}:{port}", flush=True)
    if cfg.exports_file:
        import signal

        from .server import reload_exports

        signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(reload_exports, running))
    # What start-up made (modules, classes, the XDR coders, tables) lives as long as the
    # process: out of the collector's sight, a full collection walks only what requests made.
    import gc

    gc.collect()
    gc.freeze()
    reactor.run()
    return 4 if running.fenced else 0


def _format(args) -> int:
    """`nfsd format`: a new shared namespace (exit 1 if it cannot, 2 for usage)."""
    from backend import BadSpec, format_backend

    try:
        identity = format_backend(args.meta, args.data)
    except (BadSpec, ValueError) as e:
        print(f"nfsd format: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a database that cannot be reached, refused rights
        print(f"nfsd format: cannot format: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"nfsd: formatted a namespace (identity {identity.hex()}), contents in {args.data}")
    return 0


def _exports_check(args) -> int:
    from .exports import ExportsError, parse_exports

    try:
        exports = parse_exports(args.file)
    except ExportsError as e:
        print(f"nfsd exports check: {e}", file=sys.stderr)
        return 1
    for e in exports:
        print(e.exports_line())
    return 0


def _inspect(args) -> int:
    """Exit status: 0 healthy, 3 problems found, 1 cannot read (2: usage, from argparse)."""
    import json

    from backend import BadSpec, Unreadable, inspect_backend

    if (args.directory is None) == (args.meta is None):
        print("nfsd inspect: give a directory or --meta URL", file=sys.stderr)
        return 2
    try:
        st = inspect_backend(args.meta) if args.meta else \
            inspect_backend(os.path.abspath(args.directory), state_dir=args.state_dir)
    except (Unreadable, BadSpec) as e:
        print(f"nfsd inspect: cannot read {e}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(st, sys.stdout, indent=2)
        print()
    else:
        _print_inspect(st)
    return 3 if st["problems"] else 0


def _print_inspect(st):
    for f in st.get("frontends", ()):
        s = f["status"] or {}
        print(f"frontend {f['id']}: {f['state']}{' (overdue)' if f['overdue'] else ''}, epoch "
              f"{f['epoch']}, heartbeat {f['heartbeat_age_s']}s ago, "
              f"{len(s.get('clients', []))} client(s)")
        for c in s.get("clients", []):
            print(f"  {c['owner']}  v4.{c['minor_version']}  lease={c['lease']}  "
                  f"opens={c['opens']}  writing={c['writing']}")
    if "frontends" in st:
        return _print_files(st)
    status = st["status"]
    if status is None:
        print("server: no status snapshot (never started here?)")
    else:
        state = "running" if st["server_running"] else "not running"
        print(f"server: {state} (pid {status.get('pid')}), lease {status.get('lease_time_s')}s"
              + (f", grace ends in {status['grace_remaining_s']}s"
                 if status.get("grace_remaining_s") is not None else ""))
        clients = status.get("clients", [])
        print(f"clients: {len(clients)}")
        for c in clients:
            print(f"  {c['owner']}  id={c['clientid']}  v4.{c['minor_version']}  "
                  f"lease={c['lease']} ({c['lease_remaining_s']}s left)  sessions={c['sessions']}"
                  f"  opens={c['opens']}  writing={c['writing']}")
    _print_files(st)


def _print_files(st):
    files = st["files"]
    print(f"unfinished files: {len(files)}")
    if files:
        print(f"  {'STATE':<12} {'SIZE':>12} {'AGE':>8}  {'CLIENT':<30} NAME")
        for f in files:
            print(f"  {f['state']:<12} {f['staged_size'] or 0:>12} {f['age_s']:>7}s  "
                  f"{(f['client'] or '-')[:30]:<30} {f['name']}")
    if st["problems"]:
        print(f"problems: {len(st['problems'])}")
        for p in st["problems"]:
            print(f"  {p['path']}: {p['reason']}")


def _id(text: str) -> int:
    """A uid or gid: 0 .. 2^32-1."""
    v = int(text)
    if not 0 <= v < 1 << 32:
        raise ValueError(text)
    return v


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nfsd", description="A user-space NFSv4 server whose files are write-once.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve a directory as the NFSv4 root /")
    s.add_argument("directory", nargs="?", help="directory to serve as / (or use --exports)")
    s.add_argument("--exports", metavar="FILE", default=None,
                   help="exports file (exports(5) syntax); reloaded on SIGHUP")
    s.add_argument("--bind", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    s.add_argument("--port", type=int, default=2049, help="TCP port (default 2049; 0 picks one)")
    s.add_argument("--state-dir", default=None,
                   help="server state (default DIR/.nfsd); must be on the same file system")
    s.add_argument("--lease-time", type=int, default=90, help="lease in seconds (default 90)")
    s.add_argument("--grace-time", type=int, default=None,
                   help="grace period after a restart in seconds (default: one lease)")
    s.add_argument("--retire-after", type=int, default=3600,
                   help="seconds an abandoned unpublished file is kept (default 3600)")
    s.add_argument("--max-connections", type=int, default=1024, help="default 1024")
    s.add_argument("--idle-timeout", type=float, default=600.0,
                   help="close connections idle this many seconds (default 600)")
    s.add_argument("--max-clients", type=int, default=10_000, help="default 10000")
    s.add_argument("--max-opens-per-client", type=int, default=10_000,
                   help="open files (and lock states) per client (default 10000)")
    q = s.add_argument_group(
        "who may use `nfsd serve DIR`",
        "Default: this host's own networks (loopback and on-link), read-write, root squashed, "
        "requests from ports below 1024 only; the start-up line shows it as an exports(5) line.")
    q.add_argument("--allow", action="append", metavar="CLIENTS",
                   help="an address, a CIDR block or '*' that may mount (repeat for more; "
                        "replaces the default networks)")
    q.add_argument("--ro", action="store_true", help="export read-only")
    q.add_argument("--no-root-squash", action="store_true",
                   help="root on a client stays root (default: becomes --anonuid)")
    q.add_argument("--insecure", action="store_true",
                   help="accept requests from any source port (default: below 1024 only)")
    q.add_argument("--anonuid", type=_id, default=None, metavar="UID",
                   help="uid of a squashed root (default 65534)")
    q.add_argument("--anongid", type=_id, default=None, metavar="GID",
                   help="gid of a squashed root (default 65534)")
    m = s.add_argument_group(
        "a frontend of a shared namespace (docs/scale-out.md)",
        "Instead of DIR: the namespace in PostgreSQL, its contents in S3 (credentials from the "
        "usual AWS_* environment variables). Needs the optional dependencies: "
        "pip install '.[scale]'.")
    m.add_argument("--meta", metavar="URL", help="the metadata database (postgresql://...)")
    m.add_argument("--data", metavar="URL", help="where contents are kept (s3://BUCKET/PREFIX)")
    m.add_argument("--frontend-id", metavar="NAME",
                   help="this frontend's name, the same after every restart of it")
    m.add_argument("--spool", metavar="DIR",
                   help="local directory for files under construction (keep it across restarts)")
    m.add_argument("--s3-endpoint", metavar="URL",
                   help="an S3-compatible endpoint (MinIO, Ceph RGW, ...); default AWS")
    s.add_argument("--no-delegations", action="store_true",
                   help="never hand out read delegations (no callbacks to clients)")
    s.add_argument("--metrics", metavar="ADDR:PORT", default=None,
                   help="serve Prometheus metrics over HTTP at ADDR:PORT/metrics")
    s.add_argument("--inline-fsync-ms", type=float, default=1.0, metavar="MS",
                   help="a publish's directory fsync runs on the event loop while fsyncs "
                        "average under MS ms, else in a worker thread shared by concurrent "
                        "publishes (default 1; 0: always in threads)")
    c = s.add_argument_group("NFSv4.2 server-side copy (COPY, CLONE)")
    c.add_argument("--no-server-copy", action="store_true",
                   help="answer COPY and CLONE with NOTSUPP: clients copy through themselves")
    c.add_argument("--copy-async-mib", type=float, default=64, metavar="MIB",
                   help="copies of at least MIB MiB run asynchronously, the client told at the "
                        "end by CB_OFFLOAD (default 64)")
    c.add_argument("--max-async-copies", type=int, default=4, metavar="N",
                   help="asynchronous copies per client at once; more run synchronously "
                        "(default 4)")
    s.add_argument("-v", "--verbose", action="store_true", help="log every request")
    s.set_defaults(fn=_serve)
    ex = sub.add_parser("exports", help="exports file tools")
    exsub = ex.add_subparsers(dest="excmd", required=True)
    chk = exsub.add_parser("check", help="validate an exports file without serving")
    chk.add_argument("file")
    chk.set_defaults(fn=_exports_check)
    f = sub.add_parser("format", help="make a new shared namespace (PostgreSQL + S3)")
    f.add_argument("--meta", required=True, metavar="URL",
                   help="an empty PostgreSQL database (postgresql://...)")
    f.add_argument("--data", required=True, metavar="URL", help="s3://BUCKET/PREFIX")
    f.set_defaults(fn=_format)
    i = sub.add_parser("inspect", help="list unfinished files and clients (read-only)")
    i.add_argument("directory", nargs="?", help="the exported directory")
    i.add_argument("--meta", metavar="URL", help="a shared namespace instead (postgresql://...)")
    i.add_argument("--state-dir", default=None, help="state directory if not DIR/.nfsd")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(fn=_inspect)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
