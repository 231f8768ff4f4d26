"""`python -m nfsd.xdr nfs4|rpc [-o FILE | --write]`: the Python the XDR compiler generates for
a protocol, as one readable module (`nfsd/xdr/gen_<protocol>.py` is that module, checked in;
`--write` writes it there after the declarations changed)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import compiler


def source(protocol: str) -> str:
    """The module generated from nfsd/xdr/<protocol>.py's declarations as they are now."""
    compiler.GENERATING = True
    try:
        mod = importlib.import_module(f"nfsd.xdr.{protocol}")
        return compiler.generate(mod.spec)
    finally:
        compiler.GENERATING = False


def path(protocol: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), f"gen_{protocol}.py")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nfsd.xdr", description=__doc__)
    p.add_argument("protocol", choices=("nfs4", "rpc"), help="which declarations")
    p.add_argument("-o", "--output", help="write to FILE instead of standard output")
    p.add_argument("--write", action="store_true", help="write nfsd/xdr/gen_<protocol>.py")
    a = p.parse_args(argv)
    src = source(a.protocol)
    out = path(a.protocol) if a.write else a.output
    if out:
        with open(out, "w") as f:
            f.write(src)
    else:
        sys.stdout.write(src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
