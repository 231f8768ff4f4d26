"""The compiled fattr4 encoders (nfsd/attrs.py) against the one-attribute-at-a-time XDR path."""

from hypothesis import given, settings, strategies as st

from backend.interface import Attrs, FsStats, Kind
from nfsd import attrs
from nfsd.xdr import nfs4 as x

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
times = st.integers(-(2**62), 2**62)

attr_values = st.builds(
    Attrs, kind=st.sampled_from(list(Kind)), mode=st.integers(0, 0o7777), nlink=u32, uid=u32,
    gid=u32, size=u64, used=u64, rdev=st.tuples(u32, u32), fileid=u64, atime_ns=times,
    mtime_ns=times, ctime_ns=times, change=u64)
fs_stats = st.builds(FsStats, files_total=u64, files_free=u64, files_avail=u64,
                     space_total=u64, space_free=u64, space_avail=u64)


def _source(a, fs, fh, fsid, lease, minor, mounted_on, xattrs):
    def statfs():
        fs.xattrs = xattrs
        return fs
    return attrs.AttrSource(a, fh, fsid, lease, statfs, minor, mounted_on)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(a=attr_values, fs=fs_stats, fh=st.binary(min_size=1, max_size=128),
       fsid=st.tuples(u64, u64), lease=u32, minor=st.integers(0, 2),
       mounted_on=st.none() | u64, xattrs=st.booleans(),
       numbers=st.sets(st.sampled_from(sorted(attrs.GETTERS)), min_size=1))
def test_compiled_encoder_matches_generic(a, fs, fh, fsid, lease, minor, mounted_on, xattrs,
                                          numbers):
    req = attrs.to_words(numbers)
    src = _source(a, fs, fh, fsid, lease, minor, mounted_on, xattrs)
    fa = attrs.encode(req, src)
    assert fa.attr_vals == attrs.encode_generic(req, src)
    # and the reply decodes back to the requested supported attributes
    want = [n for n in sorted(numbers) if n in attrs.supported(minor)]
    assert attrs.from_words(fa.attrmask) == want
    p = 0
    for n in want:
        _, p = x.ATTRS[n][1].dec(fa.attr_vals, p)
    assert p == len(fa.attr_vals)


def test_every_bitmap_of_all_attributes():
    a = Attrs(Kind.REG, 0o644, 1, 1000, 100, 5, 4096, (0, 0), 77, 1, -1, 2_000_000_001, 9)
    for minor in (0, 1, 2):
        req = attrs.to_words(attrs.GETTERS)
        src = _source(a, FsStats(1, 2, 3, 4, 5, 6), b"\x01fh", (1, 2), 90, minor, None, True)
        assert attrs.encode(req, src).attr_vals == attrs.encode_generic(req, src)
