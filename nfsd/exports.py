"""Exports: which directories are served, to whom, how; the NFSv4 pseudo file system above them;
and filehandles.

An exports file uses the syntax administrators know from exports(5)::

    # path      client(options) ...
    /srv/data   10.0.0.0/8(rw,root_squash) 127.0.0.1(rw,no_root_squash) *(ro)
    /srv/lab    -rw,all_squash,anonuid=1000,anongid=1000 192.168.1.0/24 ::1(ro)

Clients are single addresses, CIDR blocks or `*` (host names and netgroups are refused: there
is no resolver to trust here). The first matching client entry of an export applies. Options:
`rw`/`ro`, `root_squash` (default)/`no_root_squash`/`all_squash`/`no_all_squash`,
`anonuid=N`/`anongid=N` (default 65534), `secure` (default: source port < 1024)/`insecure`,
`sec=sys` (AUTH_SYS and AUTH_NONE; nothing else is offered). A `-options` word after the path
sets defaults for that line's clients.

Every export appears at its own path under a read-only pseudo root (`mount HOST:/ /mnt` shows
the directories leading to the exports the client may use; `mount HOST:/srv/data /mnt` mounts
one). `nfsd serve DIR` is a single export of DIR at `/` (`quick_export`): read-write, root
squashed, secure ports, to this host's own networks unless told otherwise (docs/exports.md).

A filehandle on the wire is ``FH_VERSION || backend handle``; a backend handle starts with the
8-byte identity of its state directory, which names the export (so handles survive restarts and
reloads of the exports file), and the pseudo file system has its own prefix.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import stat as _stat
from dataclasses import dataclass, field

from backend import interface as bi
from backend.interface import Attrs, DirEntry, FsStats, Kind

from .access import Cred
from .errors import NFS4Error
from .xdr import nfs4 as x

FH_VERSION = 1
PSEUDO_PREFIX = b"\0nfsd-ps"  # 8 bytes: the pseudo file system's "state dir identity"


# ---------------------------------------------------------------------------- options
class ExportsError(ValueError):
    """A bad exports file: `line` (1-based) and the reason."""

    def __init__(self, path, line, reason):
        self.path, self.line, self.reason = path, line, reason
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")


@dataclass(frozen=True)
class Options:
    rw: bool = False
    root_squash: bool = True
    all_squash: bool = False
    anonuid: int = 65534
    anongid: int = 65534
    secure: bool = True

    def text(self) -> str:
        """The options as exports(5) writes them (what `nfsd exports check` and the start-up
        line print)."""
        parts = ["rw" if self.rw else "ro"]
        parts.append("all_squash" if self.all_squash else
                     "root_squash" if self.root_squash else "no_root_squash")
        if self.all_squash or self.root_squash:
            parts.append(f"anonuid={self.anonuid},anongid={self.anongid}")
        parts.append("secure" if self.secure else "insecure")
        return ",".join(parts)

    def squash(self, cred: Cred) -> Cred:
        if self.all_squash or (self.root_squash and cred.uid == 0):
            return Cred(self.anonuid, self.anongid, ())
        if self.root_squash and (cred.gid == 0 or 0 in cred.gids):
            gids = tuple(self.anongid if g == 0 else g for g in cred.gids)
            return Cred(cred.uid, self.anongid if cred.gid == 0 else cred.gid, gids)
        return cred


PSEUDO_OPTIONS = Options(rw=False, root_squash=False, secure=False)


def _apply(opts: dict, word: str, where):
    name, _, value = word.partition("=")
    flags = {
        "rw": ("rw", True), "ro": ("rw", False),
        "root_squash": ("root_squash", True), "no_root_squash": ("root_squash", False),
        "all_squash": ("all_squash", True), "no_all_squash": ("all_squash", False),
        "secure": ("secure", True), "insecure": ("secure", False),
    }
    if name in flags and not value:
        k, v = flags[name]
        opts[k] = v
    elif name in ("anonuid", "anongid") and value:
        if not value.isdigit() or int(value) >= 1 << 32:
            raise where(f"{name} needs a number, not {value!r}")
        opts[name] = int(value)
    elif name == "sec":
        for flavor in value.split(":"):
            if flavor != "sys":
                raise where(f"sec={flavor} is not supported (only sec=sys)")
    elif name in ("sync", "async", "no_subtree_check", "subtree_check", "wdelay", "no_wdelay",
                  "hide", "nohide", "crossmnt", "nocrossmnt"):
        pass  # kernel nfsd options with nothing to do here, accepted so files can be shared
    else:
        raise where(f"unknown option {word!r}")


class ClientMatch:
    """A client pattern: `*`, an address or a CIDR block."""

    def __init__(self, text: str, where):
        self.text = text
        if text == "*":
            self.net = None
            return
        if text.startswith("@"):
            raise where(f"netgroups are not supported: {text}")
        try:
            self.net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise where(f"{text!r} is not an address, a CIDR block or '*' "
                        "(host names are not resolved)") from None

    def matches(self, addr) -> bool:
        if self.net is None:
            return True
        if addr is None:
            return False
        if addr.version != self.net.version:
            mapped = getattr(addr, "ipv4_mapped", None)
            if mapped is None or self.net.version != 4:
                return False
            addr = mapped
        return addr in self.net


@dataclass(eq=False)
class Export:
    path: str  # where it appears in the NFSv4 namespace (its directory, for --exports)
    backend: object = None
    rules: list = field(default_factory=list)  # [(ClientMatch, Options)]
    directory: str = ""
    line: int = 0
    _cache: dict = field(default_factory=dict)

    def options_for(self, host: str | None):
        """The options for a client address, or None if it may not use this export."""
        o = self._cache.get(host, False)
        if o is not False:
            return o
        try:
            addr = ipaddress.ip_address(host) if host else None
        except ValueError:
            addr = None
        o = None
        for m, opts in self.rules:
            if m.matches(addr):
                o = opts
                break
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[host] = o
        return o

    @staticmethod
    def wire(handle: bytes) -> bytes:
        return bytes((FH_VERSION,)) + handle

    def exports_line(self) -> str:
        """This export as one exports(5) line: exactly who may do what."""
        return f"{self.directory}\t" + " ".join(f"{m.text}({o.text()})" for m, o in self.rules)


def parse_exports(path: str) -> list[Export]:
    """Read and check an exports file; raises ExportsError with the line number."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ExportsError(path, 0, f"cannot read: {e}") from None
    exports: list[Export] = []
    logical, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not logical:
            start = n
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            exports.append(_parse_line(path, start, logical))
        logical = ""
    if logical.strip():
        exports.append(_parse_line(path, start, logical))
    if not exports:
        raise ExportsError(path, 0, "no exports")
    seen: dict[str, Export] = {}
    for e in exports:
        if e.path in seen:
            raise ExportsError(path, e.line, f"{e.path} is exported twice (line {seen[e.path].line})")
        seen[e.path] = e
    for a in exports:
        for b in exports:
            if a is not b and (b.path + "/").startswith(a.path.rstrip("/") + "/") and a.path != b.path:
                raise ExportsError(path, b.line, f"{b.path} is inside {a.path} (line {a.line}): "
                                                 "exports may not overlap")
    return exports


def _parse_line(path, n, line) -> Export:
    def where(reason):
        return ExportsError(path, n, reason)

    words = _split(line, where)
    target = words[0]
    if not target.startswith("/"):
        raise where(f"export path must be absolute: {target!r}")
    norm = os.path.normpath(target)
    if not os.path.isdir(norm):
        raise where(f"{norm}: no such directory")
    defaults: dict = {}
    rules = []
    rest = words[1:]
    if rest and rest[0].startswith("-"):
        for w in rest[0][1:].split(","):
            _apply(defaults, w, where)
        rest = rest[1:]
    if not rest:
        raise where("no clients: give at least one client, e.g. *(ro)")
    for w in rest:
        host, _, optstr = w.partition("(")
        if optstr and not optstr.endswith(")"):
            raise where(f"unbalanced parenthesis in {w!r}")
        opts = dict(defaults)
        for o in filter(None, optstr[:-1].split(",")):
            _apply(opts, o, where)
        rules.append((ClientMatch(host or "*", where), Options(**opts)))
    return Export(path=norm, rules=rules, directory=norm, line=n)


def _split(line, where):
    words, cur, depth = [], "", 0
    for ch in line:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise where("unbalanced parenthesis")
        if ch.isspace() and depth == 0:
            if cur:
                words.append(cur)
                cur = ""
            continue
        cur += ch
    if depth:
        raise where("unbalanced parenthesis")
    if cur:
        words.append(cur)
    return words


# ---------------------------------------------------------------------------- pseudo fs
class _PNode:
    __slots__ = ("id", "path", "parent", "children", "export", "handle")

    def __init__(self, path, parent):
        self.path = path
        self.parent = parent
        self.children: dict[bytes, _PNode] = {}
        self.export = None  # set on the nodes that are export roots
        self.id = int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big") >> 1
        self.handle = PSEUDO_PREFIX + self.id.to_bytes(8, "big")


class PseudoFs:
    """The read-only directories above the exports (a backend for those few operations)."""

    def barrier(self) -> None:
        """Nobody else changes them."""

    def __init__(self, exports: list[Export], started_ns: int):
        self.root_node = _PNode("/", None)
        self.nodes = {self.root_node.handle: self.root_node}
        self.started_ns = started_ns
        for e in exports:
            node = self.root_node
            for comp in [c for c in e.path.split("/") if c]:
                name = comp.encode()
                child = node.children.get(name)
                if child is None:
                    child = _PNode(node.path.rstrip("/") + "/" + comp, node)
                    node.children[name] = child
                    self.nodes[child.handle] = child
                node = child
            node.export = e

    def node(self, handle) -> _PNode:
        n = self.nodes.get(bytes(handle))
        if n is None:
            raise bi.Stale("not a pseudo directory")
        return n

    # the Backend subset the operations use on pseudo directories
    def root(self):
        return self.root_node.handle

    def fsid(self):
        return (0, 0)

    def check(self, handle):
        self.node(handle)

    def getattr(self, handle, viewer=None) -> Attrs:
        n = self.node(handle)
        t = self.started_ns
        return Attrs(Kind.DIR, 0o555, 2 + len(n.children), 0, 0, 4096, 4096, (0, 0), n.id,
                     t, t, t, t)

    def statfs(self, handle):
        return FsStats(0, 0, 0, 0, 0, 0)

    def dir_verifier(self, dir):
        return bytes(8)

    def parent(self, handle):
        n = self.node(handle)
        return (n.parent or n).handle

    def __getattr__(self, name):
        # Everything that would change the pseudo file system: read-only.
        if name in ("mkdir", "symlink", "mknod", "remove", "rename", "link", "setattr",
                    "create_staged", "stage_version"):
            def refuse(*a, **k):
                raise bi.ReadOnly("pseudo file system")
            return refuse
        if name in ("read", "readlink", "open_version", "create_verifier"):
            def wrong(*a, **k):
                raise bi.IsDir()
            return wrong
        raise AttributeError(name)


class PseudoExport:
    """The pseudo file system as the `export` of its filehandles."""

    path = "/"
    rules = ()

    def __init__(self, fs: PseudoFs):
        self.backend = fs

    @staticmethod
    def options_for(host):
        return PSEUDO_OPTIONS

    @staticmethod
    def wire(handle: bytes) -> bytes:
        return bytes((FH_VERSION,)) + handle


# ---------------------------------------------------------------------------- filehandles
class FileRef:
    """The current or saved filehandle of a COMPOUND: an export and a backend handle."""

    __slots__ = ("export", "handle", "_wire")

    def __init__(self, export, handle: bytes, wire: bytes | None = None):
        self.export = export
        self.handle = handle
        self._wire = wire

    @property
    def wire(self) -> bytes:
        w = self._wire
        if w is None:
            w = self._wire = bytes((FH_VERSION,)) + self.handle
        return w

    @property
    def backend(self):
        return self.export.backend

    def __eq__(self, other):
        return isinstance(other, FileRef) and other.export is self.export and other.handle == self.handle

    __hash__ = None


class ExportTable:
    """All exports, the pseudo root above them, and the mapping filehandle -> export."""

    def __init__(self, exports: list[Export], started_ns: int = 0):
        self.exports = exports
        self.started_ns = started_ns
        self.by_prefix = {}
        for e in exports:
            self.by_prefix[bytes(e.backend.root()[:8])] = e
        single = [e for e in exports if e.path == "/"]
        self.pseudo = None
        if single:
            self.root_export = single[0]
        else:
            self.pseudo = PseudoExport(PseudoFs(exports, started_ns))
            self.by_prefix[PSEUDO_PREFIX] = self.pseudo
            self.root_export = self.pseudo

    def root(self) -> FileRef:
        e = self.root_export
        return FileRef(e, e.backend.root())

    def ref(self, handle: bytes) -> FileRef:
        """The FileRef of a handle a backend returned (finds its export)."""
        e = self.by_prefix.get(bytes(handle[:8]))
        if e is None:
            raise NFS4Error(x.NFS4ERR_STALE)
        return FileRef(e, handle)

    def from_wire(self, wire: bytes) -> FileRef:
        if len(wire) < 9 or len(wire) > 1 + bi.HANDLE_MAX or wire[0] != FH_VERSION:
            raise NFS4Error(x.NFS4ERR_BADHANDLE)
        handle = bytes(wire[1:])
        e = self.by_prefix.get(handle[:8])
        if e is None:
            raise NFS4Error(x.NFS4ERR_STALE)  # an export that is gone (or never was)
        return FileRef(e, handle, bytes(wire))

    # ---- the pseudo file system's joints
    def lookup(self, fh: FileRef, name: bytes, host, viewer) -> FileRef:
        """LOOKUP, crossing from a pseudo directory into an export root."""
        return self.lookup_attrs(fh, name, host, viewer)[0]

    def lookup_attrs(self, fh: FileRef, name: bytes, host, viewer):
        """(FileRef, its Attrs or None) of LOOKUP; None where they are not at hand."""
        if fh.export is self.pseudo:
            node = self.pseudo.backend.node(fh.handle).children.get(name)
            if node is None or not self._visible(node, host):
                raise NFS4Error(x.NFS4ERR_NOENT)
            if node.export is not None:
                return FileRef(node.export, node.export.backend.root()), None
            return FileRef(self.pseudo, node.handle), None
        h, a = _call(fh.backend.lookup_attrs, fh.handle, name, viewer)
        return FileRef(fh.export, h), a

    def parent(self, fh: FileRef) -> FileRef | None:
        """LOOKUPP; None at the root of the namespace."""
        if fh.export is self.pseudo:
            node = self.pseudo.backend.node(fh.handle)
            return None if node.parent is None else FileRef(self.pseudo, node.parent.handle)
        be = fh.backend
        if fh.handle == be.root():
            if self.pseudo is None:
                return None
            node = self._node_of(fh.export)
            return FileRef(self.pseudo, node.parent.handle)
        return FileRef(fh.export, _call(be.parent, fh.handle))

    def _node_of(self, export) -> _PNode:
        for n in self.pseudo.backend.nodes.values():
            if n.export is export:
                return n
        raise NFS4Error(x.NFS4ERR_STALE)

    def mounted_on(self, fh: FileRef):
        """mounted_on_fileid of an export root: its pseudo directory's fileid."""
        if self.pseudo is not None and fh.export is not self.pseudo and fh.handle == fh.backend.root():
            return self._node_of(fh.export).id
        return None

    def readdir_pseudo(self, fh: FileRef, host):
        """Entries of a pseudo directory, only those leading to exports the client may use."""
        node = self.pseudo.backend.node(fh.handle)
        out = []
        for name, child in sorted(node.children.items(), key=lambda kv: kv[1].id):
            if not self._visible(child, host):
                continue
            if child.export is not None:
                be = child.export.backend
                h = be.root()
                out.append(DirEntry(max(3, child.id), name, h, be.getattr(h)))
            else:
                out.append(DirEntry(max(3, child.id), name, child.handle,
                                    self.pseudo.backend.getattr(child.handle)))
        return out

    def _visible(self, node: _PNode, host) -> bool:
        if node.export is not None:
            return node.export.options_for(host) is not None
        return any(self._visible(c, host) for c in node.children.values())

    def close(self):
        for e in self.exports:
            e.backend.close()


def _call(fn, *a):
    try:
        return fn(*a)
    except bi.BackendError as e:
        from .errors import status_of

        raise NFS4Error(status_of(e)) from None


def quick_export(directory: str, backend, clients, options: Options) -> Export:
    """`nfsd serve DIR`: DIR at / for `clients` (addresses, CIDR blocks or '*'), each with
    `options`. A bad client raises ValueError."""
    def where(reason):
        return ValueError(reason)
    rules = [(ClientMatch(str(c), where), options) for c in clients]
    if not rules:
        raise ValueError("no clients to export to")
    return Export(path="/", backend=backend, rules=rules, directory=directory)


_ = _stat
