"""File attributes on the wire (fattr4): which ones the server supports, how each is produced
from the backend's `Attrs`, and how client-supplied attributes are parsed.

GETATTR and READDIR replies are encoded by a function compiled once per requested bitmap
(clients ask for the same few bitmaps over and over): runs of fixed-size attributes become one
precompiled struct.pack, so an entry costs a handful of calls and no bitmap interpretation.
"""

from __future__ import annotations

import grp
import pwd
import struct

from backend.interface import Kind

from .errors import NFS4Error
from .xdr import XdrError, nfs4 as x

MAX_RW = 1024 * 1024  # maxread / maxwrite
MAX_FILESIZE = (1 << 63) - 1
MAXLINK = 65000

# Attributes a SETATTR (and CREATE/OPEN createattrs) may carry.
WRITABLE = frozenset({
    x.FATTR4_SIZE, x.FATTR4_MODE, x.FATTR4_OWNER, x.FATTR4_OWNER_GROUP,
    x.FATTR4_TIME_ACCESS_SET, x.FATTR4_TIME_MODIFY_SET,
})

# Set-only attributes: asking for them in GETATTR, READDIR or VERIFY/NVERIFY is
# NFS4ERR_INVAL (RFC 8881 section 5.5).
SET_ONLY = frozenset({x.FATTR4_TIME_ACCESS_SET, x.FATTR4_TIME_MODIFY_SET})
_SET_ONLY_WORD1 = sum(1 << (n - 32) for n in SET_ONLY)

# Attributes needing file system statistics (statvfs) rather than the object's stat.
FS_STATS = frozenset({
    x.FATTR4_FILES_AVAIL, x.FATTR4_FILES_FREE, x.FATTR4_FILES_TOTAL,
    x.FATTR4_SPACE_AVAIL, x.FATTR4_SPACE_FREE, x.FATTR4_SPACE_TOTAL,
    x.FATTR4_XATTR_SUPPORT, x.FATTR4_CLONE_BLKSIZE,
})


class AttrSource:
    """What attribute getters read: the object's attributes plus context, fetched lazily."""

    __slots__ = ("a", "fh", "fsid", "lease", "_fs", "_statfs", "minor", "mounted_on")

    def __init__(self, a, fh: bytes, fsid, lease: int, statfs, minor: int, mounted_on=None):
        self.a = a
        self.fh = fh
        self.fsid = fsid
        self.lease = lease
        self._fs = None
        self._statfs = statfs
        self.minor = minor
        self.mounted_on = mounted_on

    @property
    def fs(self):
        if self._fs is None:
            self._fs = self._statfs()
        return self._fs


def _supported(s):
    return SUPPORTED_WORDS[min(s.minor, 2)]


# Where each attribute's value comes from, said once. Fixed-size attributes: struct codes and
# expressions over `a` (the object's Attrs) and `s` (the AttrSource); the compiled encoders
# pack runs of them with one struct call, and GETTERS below are made from the same
# expressions. Variable-size ones: an expression giving their XDR bytes (_VARIABLE) and a
# getter giving their value (GETTERS).
_FIXED = {
    x.FATTR4_TYPE: ("I", "a.kind"),
    x.FATTR4_FH_EXPIRE_TYPE: ("I", str(x.FH4_PERSISTENT)),
    x.FATTR4_CHANGE: ("Q", "a.change"),
    x.FATTR4_SIZE: ("Q", "a.size"),
    x.FATTR4_LINK_SUPPORT: ("I", "1"),
    x.FATTR4_SYMLINK_SUPPORT: ("I", "1"),
    x.FATTR4_NAMED_ATTR: ("I", "0"),
    x.FATTR4_FSID: ("QQ", "s.fsid[0]", "s.fsid[1]"),
    x.FATTR4_UNIQUE_HANDLES: ("I", "1"),
    x.FATTR4_LEASE_TIME: ("I", "s.lease"),
    x.FATTR4_RDATTR_ERROR: ("I", "0"),
    x.FATTR4_CANSETTIME: ("I", "1"),
    x.FATTR4_CASE_INSENSITIVE: ("I", "0"),
    x.FATTR4_CASE_PRESERVING: ("I", "1"),
    x.FATTR4_CHOWN_RESTRICTED: ("I", "1"),
    x.FATTR4_FILEID: ("Q", "a.fileid"),
    x.FATTR4_FILES_AVAIL: ("Q", "s.fs.files_avail"),
    x.FATTR4_FILES_FREE: ("Q", "s.fs.files_free"),
    x.FATTR4_FILES_TOTAL: ("Q", "s.fs.files_total"),
    x.FATTR4_HOMOGENEOUS: ("I", "1"),
    x.FATTR4_MAXFILESIZE: ("Q", str(MAX_FILESIZE)),
    x.FATTR4_MAXLINK: ("I", str(MAXLINK)),
    x.FATTR4_MAXNAME: ("I", "255"),
    x.FATTR4_MAXREAD: ("Q", str(MAX_RW)),
    x.FATTR4_MAXWRITE: ("Q", str(MAX_RW)),
    x.FATTR4_MODE: ("I", "a.mode & 0o7777"),
    x.FATTR4_NO_TRUNC: ("I", "1"),
    x.FATTR4_NUMLINKS: ("I", "a.nlink"),
    x.FATTR4_RAWDEV: ("II", "a.rdev[0]", "a.rdev[1]"),
    x.FATTR4_SPACE_AVAIL: ("Q", "s.fs.space_avail"),
    x.FATTR4_SPACE_FREE: ("Q", "s.fs.space_free"),
    x.FATTR4_SPACE_TOTAL: ("Q", "s.fs.space_total"),
    x.FATTR4_SPACE_USED: ("Q", "a.used"),
    x.FATTR4_TIME_ACCESS: ("qI", "a.atime_ns // 1000000000", "a.atime_ns % 1000000000"),
    x.FATTR4_TIME_DELTA: ("qI", "0", "1"),
    x.FATTR4_TIME_METADATA: ("qI", "a.ctime_ns // 1000000000", "a.ctime_ns % 1000000000"),
    x.FATTR4_TIME_MODIFY: ("qI", "a.mtime_ns // 1000000000", "a.mtime_ns % 1000000000"),
    x.FATTR4_MOUNTED_ON_FILEID: ("Q", "(a.fileid if s.mounted_on is None else s.mounted_on)"),
    x.FATTR4_XATTR_SUPPORT: ("I", "s.fs.xattrs"),
    x.FATTR4_CLONE_BLKSIZE: ("I", "s.fs.clone_blksize"),
}
_VARIABLE = {
    x.FATTR4_FILEHANDLE: "_opaque(s.fh)",
    x.FATTR4_OWNER: "(_ids.get(a.uid) or _id(a.uid))",
    x.FATTR4_OWNER_GROUP: "(_ids.get(a.gid) or _id(a.gid))",
}


# struct codes of the multi-field XDR types among them, and those types
_SHAPES = {"QQ": x.fsid4, "II": x.specdata4, "qI": x.nfstime4}


def _fixed_getter(fmt: str, exprs: list[str]):
    """getter(AttrSource) -> the attribute's value for its XDR encoder, from its _FIXED row."""
    value = ", ".join(exprs)
    env = {"_shape": _SHAPES.get(fmt)}
    if env["_shape"] is not None:
        value = f"_shape({value})"
    exec(compile(f"def get(s):\n    a = s.a\n    return {value}\n", "<attr getter>", "exec"),
         env)  # noqa: S102 - generated from the table above
    return env["get"]


# attribute number -> getter(AttrSource) -> value for that attribute's XDR type
GETTERS = {n: _fixed_getter(fmt, exprs) for n, (fmt, *exprs) in _FIXED.items()}
GETTERS.update({
    x.FATTR4_SUPPORTED_ATTRS: _supported,
    x.FATTR4_FILEHANDLE: lambda s: s.fh,
    x.FATTR4_OWNER: lambda s: b"%d" % s.a.uid,
    x.FATTR4_OWNER_GROUP: lambda s: b"%d" % s.a.gid,
    x.FATTR4_SUPPATTR_EXCLCREAT: lambda s: EXCLCREAT_WORDS,
})


# The attributes of each minor version (supported_attrs); `supported(minor)` picks one.
ONLY_42 = {x.FATTR4_XATTR_SUPPORT, x.FATTR4_CLONE_BLKSIZE}
SUPPORTED_40 = frozenset(GETTERS) - {x.FATTR4_SUPPATTR_EXCLCREAT} - ONLY_42 | WRITABLE
SUPPORTED_41 = frozenset(GETTERS) - ONLY_42 | WRITABLE
SUPPORTED_42 = SUPPORTED_41 | ONLY_42
_SUPPORTED = (SUPPORTED_40, SUPPORTED_41, SUPPORTED_42)


def supported(minor: int) -> frozenset:
    """The attributes this server supports at a minor version (4.2: also xattr_support)."""
    return _SUPPORTED[min(minor, 2)]


def to_words(attrs) -> list[int]:
    """A set of attribute numbers as bitmap4 words (no trailing zero words)."""
    words: list[int] = []
    for n in attrs:
        w, b = divmod(n, 32)
        while len(words) <= w:
            words.append(0)
        words[w] |= 1 << b
    while words and words[-1] == 0:
        words.pop()
    return words


def from_words(words) -> list[int]:
    """bitmap4 words as a sorted list of attribute numbers."""
    out = []
    for w, word in enumerate(words):
        base = w * 32
        while word:
            low = word & -word
            out.append(base + low.bit_length() - 1)
            word ^= low
    return out


SUPPORTED_WORDS_40 = to_words(SUPPORTED_40)
SUPPORTED_WORDS_41 = to_words(SUPPORTED_41)
SUPPORTED_WORDS_42 = to_words(SUPPORTED_42)
SUPPORTED_WORDS = (SUPPORTED_WORDS_40, SUPPORTED_WORDS_41, SUPPORTED_WORDS_42)
EXCLCREAT_WORDS = to_words(WRITABLE)


def _opaque(v: bytes) -> bytes:
    n = len(v)
    return _U32(n) + v + b"\0" * (-n & 3)


_U32 = struct.Struct(">I").pack

# owner/owner_group as XDR (a string of the numeric id), by id: a directory's entries mostly
# share a few owners. Bounded: cleared when full.
_ids: dict[int, bytes] = {}


def _id(n: int) -> bytes:
    if len(_ids) >= 4096:
        _ids.clear()
    v = _ids[n] = _opaque(b"%d" % n)
    return v


def _compile(nums, minor: int):
    """A function AttrSource -> the attr_vals bytes of these attributes, with the fixed-size
    runs packed by one precompiled struct each."""
    env = {"_opaque": _opaque, "_ids": _ids, "_id": _id}
    parts: list[str] = []
    fmt, exprs = "", []

    def flush():
        nonlocal fmt, exprs
        if fmt:
            name = f"_p{len(env)}"
            env[name] = struct.Struct(">" + fmt).pack
            parts.append(f"{name}({', '.join(exprs)})")
            fmt, exprs = "", []

    for n in nums:
        if n in _FIXED:
            f, *e = _FIXED[n]
            fmt += f
            exprs += e
            continue
        flush()
        if n in _VARIABLE:
            parts.append(_VARIABLE[n])
        else:  # constants that depend on the minor version, or anything new: the generic path
            b = bytearray()
            try:
                x.ATTRS[n][1].enc(b, GETTERS[n](AttrSource(None, b"", (0, 0), 0, None, minor)))
                name = f"_c{len(env)}"
                env[name] = bytes(b)
                parts.append(name)
            except (AttributeError, TypeError):
                name = f"_g{len(env)}"
                env[name] = _generic(GETTERS[n], x.ATTRS[n][1].enc)
                parts.append(f"{name}(s)")
    flush()
    body = " + ".join(parts) if parts else "b''"
    src = f"def encode(s):\n    a = s.a\n    return {body}\n"
    exec(compile(src, f"<attrs {nums}>", "exec"), env)  # noqa: S102 - generated from tables above
    return env["encode"]


def _generic(get, enc):
    def one(s):
        b = bytearray()
        enc(b, get(s))
        return bytes(b)
    return one


class _Plan:
    """The compiled form of one requested bitmap: the reply bitmap and its encoder."""

    __slots__ = ("words", "needs_fs", "numbers", "values")

    def __init__(self, requested, supported, minor):
        nums = [n for n in from_words(requested) if n in GETTERS and n in supported]
        self.numbers = nums
        self.words = to_words(nums)
        self.needs_fs = any(n in FS_STATS for n in nums)
        self.values = _compile(nums, minor)  # AttrSource -> attr_vals


_plans: dict[tuple, _Plan] = {}


def plan(requested, minor: int) -> _Plan:
    minor = min(minor, 2)
    key = (minor, *requested)
    p = _plans.get(key)
    if p is None:
        if len(_plans) > 4096:
            _plans.clear()
        p = _plans[key] = _Plan(requested, _SUPPORTED[minor], minor)
    return p


def encode(requested, src: AttrSource):
    """fattr4 for the requested bitmap (only supported attributes are returned)."""
    p = plan(requested, src.minor)
    return x.fattr4(p.words, p.values(src))


def encode_generic(requested, src: AttrSource) -> bytes:
    """attr_vals through the XDR encoders one attribute at a time (what the compiled
    encoders must reproduce; used by the tests)."""
    b = bytearray()
    for n in plan(requested, src.minor).numbers:
        x.ATTRS[n][1].enc(b, GETTERS[n](src))
    return bytes(b)


def check_gettable(requested) -> None:
    """INVAL if a requested bitmap names a set-only attribute (RFC 8881 section 5.5)."""
    if len(requested) > 1 and requested[1] & _SET_ONLY_WORD1:
        raise NFS4Error(x.NFS4ERR_INVAL)


def requested_set(words) -> set[int]:
    return set(from_words(words))


# ------------------------------------------------------------------ client-supplied attributes
class NewAttrs:
    """Attributes a client asks to set, decoded from fattr4 (SETATTR, CREATE, OPEN, VERIFY)."""

    __slots__ = ("values", "numbers")

    def __init__(self, values: dict[int, object], numbers: list[int]):
        self.values = values
        self.numbers = numbers

    def get(self, n, default=None):
        return self.values.get(n, default)


def decode(fattr, minor: int, writable_only: bool = True) -> NewAttrs:
    """Decode a client's fattr4. For SETATTR-like use (writable_only), attributes the server
    does not support give ATTRNOTSUPP and read-only ones INVAL (RFC 8881 section 18.30.4)."""
    nums = from_words(fattr.attrmask)
    known = supported(minor)
    values: dict[int, object] = {}
    m = fattr.attr_vals
    p = 0
    try:
        for n in nums:
            if n not in x.ATTRS:
                raise NFS4Error(x.NFS4ERR_ATTRNOTSUPP)
            if writable_only and n not in WRITABLE:
                if n in known:
                    raise NFS4Error(x.NFS4ERR_INVAL)
                raise NFS4Error(x.NFS4ERR_ATTRNOTSUPP)
            v, p = x.ATTRS[n][1].dec(m, p)
            values[n] = v
    except (XdrError, struct.error):
        raise NFS4Error(x.NFS4ERR_BADXDR) from None
    if p != len(m):
        raise NFS4Error(x.NFS4ERR_BADXDR)
    return NewAttrs(values, nums)


def _parse_id(s: bytes, by_name) -> int:
    """An owner or group string as a numeric id: "1000", "1000@domain", or a local name."""
    if not s:
        raise NFS4Error(x.NFS4ERR_INVAL)
    name = s.split(b"@", 1)[0]
    if name.isdigit() and len(name) < 11:
        v = int(name)
        if v < 1 << 32:
            return v
    try:
        return by_name(name.decode())
    except (KeyError, UnicodeDecodeError):
        raise NFS4Error(x.NFS4ERR_BADOWNER) from None


def parse_owner(s: bytes) -> int:
    return _parse_id(s, lambda n: pwd.getpwnam(n).pw_uid)


def parse_group(s: bytes) -> int:
    return _parse_id(s, lambda n: grp.getgrnam(n).gr_gid)


def kind_is_dir(a) -> bool:
    return a.kind == Kind.DIR
