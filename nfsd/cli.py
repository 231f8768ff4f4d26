"""The `nfsd` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def _serve(args) -> int:
    from twisted.internet import reactor

    from .server import Config, build

    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    cfg = Config(
        directory=os.path.abspath(args.directory), bind=args.bind, port=args.port,
        state_dir=args.state_dir, lease_time=args.lease_time, grace_time=args.grace_time,
        retire_after=args.retire_after,
    )
    try:
        running = build(cfg, reactor)
    except (OSError, ValueError) as e:
        print(f"nfsd: cannot serve {args.directory}: {e}", file=sys.stderr)
        return 1
    host, port = running.address
    # Tests and scripts read this line to learn the port (with --port 0).
    print(f"nfsd: serving {cfg.directory} on {host}:{port}", flush=True)
    reactor.run()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="nfsd", description="A user-space NFSv4 server whose files are write-once.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve a directory as the NFSv4 root /")
    s.add_argument("directory")
    s.add_argument("--bind", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    s.add_argument("--port", type=int, default=2049, help="TCP port (default 2049; 0 picks one)")
    s.add_argument("--state-dir", default=None,
                   help="server state (default DIR/.nfsd); must be on the same file system")
    s.add_argument("--lease-time", type=int, default=90, help="lease in seconds (default 90)")
    s.add_argument("--grace-time", type=int, default=None,
                   help="grace period after a restart in seconds (default: one lease)")
    s.add_argument("--retire-after", type=int, default=3600,
                   help="seconds an abandoned unpublished file is kept (default 3600)")
    s.add_argument("-v", "--verbose", action="store_true", help="log every request")
    s.set_defaults(fn=_serve)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
