"""The generated XDR modules (nfsd/xdr/gen_*.py) are checked in; they must be what the compiler
makes of the declarations now, and the protocols must run on them, not on code made at import."""

import pytest

from nfsd.xdr import __main__ as gen
from nfsd.xdr import nfs4, rpc


@pytest.mark.parametrize("protocol", ["nfs4", "rpc"])
def test_generated_module_is_current(protocol):
    with open(gen.path(protocol)) as f:
        checked_in = f.read()
    assert checked_in == gen.source(protocol), (
        f"nfsd/xdr/gen_{protocol}.py is stale: run `python -m nfsd.xdr {protocol} --write`")


def test_protocols_run_the_generated_modules():
    from nfsd.xdr import gen_nfs4, gen_rpc

    assert nfs4.GETATTR4args.__module__ == "nfsd.xdr.gen_nfs4"
    assert nfs4.spec.by_name["GETATTR4args"].enc is gen_nfs4.enc_GETATTR4args
    assert rpc.spec.by_name["call_body"].dec is gen_rpc.dec_call_body
