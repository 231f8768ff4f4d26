#!/usr/bin/env python3
"""Run `nfsd serve ...` on another Twisted reactor, to measure what the event loop costs.

    scripts/serve_reactor.py epoll|twisted-epoll|asyncio|uvloop serve DIR --port 0 ...

epoll is what `nfsd serve` uses (nfsd/reactor.py: Twisted's epoll reactor without the
per-event log context); twisted-epoll is Twisted's own EPollReactor; asyncio is Twisted's
AsyncioSelectorReactor on the standard asyncio loop; uvloop the same on uvloop (`pip install
uvloop`). An experiment for scripts/bench --reactor, not a supported way to run the server.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    kind, argv = sys.argv[1], sys.argv[2:]
    if kind in ("asyncio", "uvloop"):
        import asyncio

        if kind == "uvloop":
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        from twisted.internet import asyncioreactor

        asyncioreactor.install(loop)
    elif kind == "epoll":
        from nfsd.reactor import install

        install()
    elif kind == "twisted-epoll":
        from twisted.internet import epollreactor

        epollreactor.install()
    else:
        raise SystemExit(f"unknown reactor {kind!r}")
    from nfsd.cli import main as nfsd_main

    return nfsd_main(argv)


if __name__ == "__main__":
    sys.exit(main())
