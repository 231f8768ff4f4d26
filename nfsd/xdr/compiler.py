"""Turns a `Spec` of declarations into straight-line Python encoders and decoders.

For every named type the compiler emits Python source for

    enc_<name>(b, v)          append the encoding of v to bytearray b
    dec_<name>(m, p) -> (v, p) decode from buffer m (bytes or memoryview) at offset p

and, for structs and unions, a class with `__slots__`. Runs of consecutive fixed-size fields
(integers, enums, bools, fixed opaques) become one precompiled `struct.Struct`, so decoding a
stateid is a single `unpack_from`. The source is compiled once at import; `python -m nfsd.xdr
nfs4` prints it as one module (the compiled namespace keeps it as `_source`).

Decoders raise `XdrError` (or `struct.error`, which the public entry points convert) on
truncated input, bad enum or union tags, bools other than 0/1, and lengths over a declared
maximum or longer than the input that is left; nothing is allocated before a length is checked.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

from . import dsl
from .errors import XdrError

_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")
# Opaque payloads at least this long are not copied into the output buffer when encoding into
# an `Out`: they are kept aside and handed to the transport as separate chunks.
SPLICE_MIN = 4096


class Out(bytearray):
    """An output buffer that can carry large payloads by reference (see `chunks`)."""

    __slots__ = ("splices",)

    def __init__(self, *a):
        super().__init__(*a)
        self.splices = []

    def chunks(self) -> list:
        """The encoded bytes as a list of buffers, payloads in place without copying."""
        if not self.splices:
            return [self]
        out, last = [], 0
        mv = memoryview(self)
        for pos, data in self.splices:
            if pos > last:
                out.append(mv[last:pos])
            out.append(data)
            last = pos
        if last < len(self):
            out.append(mv[last:])
        return out

    def total(self) -> int:
        return len(self) + sum(len(d) for _, d in self.splices)


def _alias_end(t):
    """The named type at the end of a chain of typedefs of named types (component4 ->
    utf8str_cs -> utf8string): their functions only call the next one's, so code that uses
    them calls the last one's directly."""
    while isinstance(t, dsl.Typedef) and t.target.name is not None:
        t = t.target
    return t


def _resolve(t):
    """Look through typedefs (for folding decisions only)."""
    while isinstance(t, dsl.Typedef):
        t = t.target
    return t


def _foldable(t):
    """struct format code for a field that can join a fixed run, else None."""
    r = _resolve(t)
    if isinstance(r, dsl._Prim):
        return r.code
    if isinstance(r, dsl.Enum):
        return "i"
    if r is dsl.Bool:
        return "I"
    if isinstance(r, dsl.Opaque):
        pad = (-r.length) & 3
        return f"{r.length}s" + ("x" * pad)
    return None


class _Gen:
    def __init__(self, spec: dsl.Spec):
        self.spec = spec
        self.lines: list[str] = []
        self.glob: dict = {
            "XdrError": XdrError,
            "_PAD": _PAD,
            "_U": struct.Struct(">I"),
            "_I": struct.Struct(">i"),
            "_TRUE": b"\0\0\0\1",
            "_FALSE": b"\0\0\0\0",
            "_Out": Out,
            "_SPLICE_MIN": SPLICE_MIN,
            "_unpack_from": struct.unpack_from,
            "_pack": struct.pack,
        }
        self.structs: dict[str, str] = {}
        self.n = 0
        self.anon: dict[int, tuple[str, str]] = {}
        self.external: dict[int, tuple[str, str]] = {}
        self._external_types: dict[int, object] = {}

    # ------------------------------------------------------------------ helpers
    def tmp(self, base="t"):
        self.n += 1
        return f"{base}{self.n}"

    def fmt(self, fmt: str) -> str:
        name = self.structs.get(fmt)
        if name is None:
            name = f"_S{len(self.structs)}"
            self.structs[fmt] = name
            self.glob[name] = struct.Struct(">" + fmt)
        return name

    def enum_set(self, e: dsl.Enum) -> str:
        name = f"_E_{e.name}"
        if name not in self.glob:
            self.glob[name] = frozenset(e.values)
        return name

    def fnames(self, t) -> tuple[str, str]:
        """Names of the encoder/decoder functions for a named or anonymous type."""
        if t.name is not None and t.name in self.spec.by_name and self.spec.by_name[t.name] is t:
            return f"enc_{t.name}", f"dec_{t.name}"
        if getattr(t, "enc", None) is not None:  # compiled in another spec
            key = id(t)
            if key not in self.external:
                e, d = f"_xenc_{t.name}", f"_xdec_{t.name}"
                self.glob[e], self.glob[d] = t.enc, t.dec
                self.external[key] = (e, d)
                self._external_types[key] = t
            return self.external[key]
        key = id(t)
        if key not in self.anon:
            k = len(self.anon)
            names = (f"_enc_anon{k}", f"_dec_anon{k}")
            self.anon[key] = names
            self.emit_functions(t, *names)
        return self.anon[key]

    # ------------------------------------------------------------------ encoders
    def enc(self, t, x: str, ind: str, out: list[str]):
        """Append to `out` code that encodes the value expression x of type t into b."""
        if isinstance(t, dsl.Typedef) and t.target.name is None:
            t = t.target
        if t.name is not None:
            out.append(f"{ind}{self.fnames(_alias_end(t))[0]}(b, {x})")
            return
        if isinstance(t, dsl._Prim):
            out.append(f"{ind}b += {self.fmt(t.code)}.pack({x})")
        elif t is dsl.Bool:
            out.append(f"{ind}b += _TRUE if {x} else _FALSE")
        elif t is dsl.Void:
            pass
        elif isinstance(t, dsl.Opaque):
            v = self.tmp("o")
            out.append(f"{ind}{v} = {x}")
            out.append(f"{ind}if len({v}) != {t.length}: raise XdrError('opaque[{t.length}] of wrong length')")
            out.append(f"{ind}b += {v}")
            if t.length & 3:
                out.append(f"{ind}b += _PAD[{t.length & 3}]")
        elif isinstance(t, dsl.VarOpaque):
            v, n = self.tmp("o"), self.tmp("n")
            out.append(f"{ind}{v} = {x}")
            out.append(f"{ind}{n} = len({v})")
            if t.max is not None:
                out.append(f"{ind}if {n} > {t.max}: raise XdrError('opaque longer than {t.max}')")
            out.append(f"{ind}b += _U.pack({n})")
            if t.view:
                out.append(f"{ind}if {n} >= _SPLICE_MIN and type(b) is _Out: b.splices.append((len(b), {v}))")
                out.append(f"{ind}else: b += {v}")
            else:
                out.append(f"{ind}b += {v}")
            out.append(f"{ind}if {n} & 3: b += _PAD[{n} & 3]")
        elif isinstance(t, (dsl.Array, dsl.VarArray)):
            v, e = self.tmp("a"), self.tmp("e")
            out.append(f"{ind}{v} = {x}")
            if isinstance(t, dsl.Array):
                out.append(f"{ind}if len({v}) != {t.length}: raise XdrError('array of wrong length')")
            else:
                if t.max is not None:
                    out.append(f"{ind}if len({v}) > {t.max}: raise XdrError('array longer than {t.max}')")
                out.append(f"{ind}b += _U.pack(len({v}))")
            r = _resolve(t.elem)
            if isinstance(r, dsl._Prim):
                out.append(f"{ind}b += _pack('>%d{r.code}' % len({v}), *{v})")
            else:
                out.append(f"{ind}for {e} in {v}:")
                self.enc(t.elem, e, ind + "    ", out)
        elif isinstance(t, dsl.Optional):
            v = self.tmp("o")
            out.append(f"{ind}{v} = {x}")
            out.append(f"{ind}if {v} is None: b += _FALSE")
            out.append(f"{ind}else:")
            out.append(f"{ind}    b += _TRUE")
            self.enc(t.elem, v, ind + "    ", out)
        elif isinstance(t, dsl.LinkedList):
            v, e = self.tmp("a"), self.tmp("e")
            out.append(f"{ind}{v} = {x}")
            if t.max is not None:
                out.append(f"{ind}if len({v}) > {t.max}: raise XdrError('list longer than {t.max}')")
            out.append(f"{ind}for {e} in {v}:")
            out.append(f"{ind}    b += _TRUE")
            self.enc(t.elem, e, ind + "    ", out)
            out.append(f"{ind}b += _FALSE")
        else:  # pragma: no cover - declarations are checked by the tests
            raise TypeError(f"cannot encode {t!r}")

    # ------------------------------------------------------------------ decoders
    def dec(self, t, target: str, ind: str, out: list[str]):
        """Append code that decodes a value of type t from m at p into variable `target`."""
        if isinstance(t, dsl.Typedef) and t.target.name is None:
            t = t.target
        if t.name is not None:
            out.append(f"{ind}{target}, p = {self.fnames(_alias_end(t))[1]}(m, p)")
            return
        if isinstance(t, dsl._Prim):
            out.append(f"{ind}{target}, = {self.fmt(t.code)}.unpack_from(m, p)")
            out.append(f"{ind}p += {t.size}")
        elif t is dsl.Bool:
            out.append(f"{ind}{target}, = _U.unpack_from(m, p)")
            out.append(f"{ind}if {target} > 1: raise XdrError('bad bool')")
            out.append(f"{ind}{target} = {target} == 1")
            out.append(f"{ind}p += 4")
        elif t is dsl.Void:
            out.append(f"{ind}{target} = None")
        elif isinstance(t, dsl.Opaque):
            e = self.tmp("e")
            out.append(f"{ind}{e} = p + {t.length}")
            out.append(f"{ind}if {e} + {(-t.length) & 3} > len(m): raise XdrError('truncated')")
            out.append(f"{ind}{target} = bytes(m[p:{e}])")
            out.append(f"{ind}p = {e} + {(-t.length) & 3}")
        elif isinstance(t, dsl.VarOpaque):
            n, e = self.tmp("n"), self.tmp("e")
            out.append(f"{ind}{n}, = _U.unpack_from(m, p)")
            if t.max is not None:
                out.append(f"{ind}if {n} > {t.max}: raise XdrError('opaque longer than {t.max}')")
            out.append(f"{ind}{e} = p + 4 + {n}")
            out.append(f"{ind}if {e} + (-{n} & 3) > len(m): raise XdrError('truncated')")
            if t.view:
                out.append(f"{ind}{target} = m[p + 4:{e}]")
            else:
                out.append(f"{ind}{target} = bytes(m[p + 4:{e}])")
            out.append(f"{ind}p = {e} + (-{n} & 3)")
        elif isinstance(t, (dsl.Array, dsl.VarArray)):
            n, i, e = self.tmp("n"), self.tmp("i"), self.tmp("e")
            if isinstance(t, dsl.Array):
                out.append(f"{ind}{n} = {t.length}")
            else:
                out.append(f"{ind}{n}, = _U.unpack_from(m, p)")
                out.append(f"{ind}p += 4")
                if t.max is not None:
                    out.append(f"{ind}if {n} > {t.max}: raise XdrError('array longer than {t.max}')")
            ms = max(t.elem.min_size(), 1)
            out.append(f"{ind}if {n} * {ms} > len(m) - p: raise XdrError('truncated')")
            r = _resolve(t.elem)
            if isinstance(r, dsl._Prim):
                out.append(f"{ind}{target} = list(_unpack_from('>%d{r.code}' % {n}, m, p))")
                out.append(f"{ind}p += {n} * {r.size}")
            else:
                out.append(f"{ind}{target} = []")
                out.append(f"{ind}for {i} in range({n}):")
                self.dec(t.elem, e, ind + "    ", out)
                out.append(f"{ind}    {target}.append({e})")
        elif isinstance(t, dsl.Optional):
            f = self.tmp("f")
            out.append(f"{ind}{f}, = _U.unpack_from(m, p)")
            out.append(f"{ind}p += 4")
            out.append(f"{ind}if {f} == 0: {target} = None")
            out.append(f"{ind}elif {f} == 1:")
            self.dec(t.elem, target, ind + "    ", out)
            out.append(f"{ind}else: raise XdrError('bad optional flag')")
        elif isinstance(t, dsl.LinkedList):
            f, e = self.tmp("f"), self.tmp("e")
            ms = max(t.elem.min_size(), 1) + 4
            out.append(f"{ind}{target} = []")
            out.append(f"{ind}while True:")
            out.append(f"{ind}    {f}, = _U.unpack_from(m, p)")
            out.append(f"{ind}    p += 4")
            out.append(f"{ind}    if {f} == 0: break")
            out.append(f"{ind}    if {f} != 1: raise XdrError('bad list flag')")
            if t.max is not None:
                out.append(f"{ind}    if len({target}) >= {t.max}: raise XdrError('list longer than {t.max}')")
            self.dec(t.elem, e, ind + "    ", out)
            out.append(f"{ind}    {target}.append({e})")
        else:  # pragma: no cover
            raise TypeError(f"cannot decode {t!r}")

    # ------------------------------------------------------------------ per declaration
    def emit_functions(self, t, encname: str, decname: str):
        """Emit enc/dec functions (and the class, for structs and unions) for type t."""
        if isinstance(t, dsl.Struct):
            self.emit_struct(t, encname, decname)
        elif isinstance(t, dsl.Union):
            self.emit_union(t, encname, decname)
        elif isinstance(t, dsl.Enum):
            s = self.enum_set(t)
            self.lines += [
                f"def {encname}(b, v):",
                f"    if v not in {s}: raise XdrError('bad {t.name} value %r' % (v,))",
                "    b += _I.pack(v)",
                "",
                f"def {decname}(m, p):",
                "    v, = _I.unpack_from(m, p)",
                f"    if v not in {s}: raise XdrError('bad {t.name} value %d' % v)",
                "    return v, p + 4",
                "",
            ]
        else:
            target = t.target if isinstance(t, dsl.Typedef) else t
            body_e: list[str] = []
            body_d: list[str] = []
            if target is not t and target.name is not None:
                body_e.append(f"    {self.fnames(target)[0]}(b, v)")
                body_d.append(f"    return {self.fnames(target)[1]}(m, p)")
            else:
                self.enc(target, "v", "    ", body_e)
                self.dec(target, "v", "    ", body_d)
                body_d.append("    return v, p")
            self.lines.append(f"def {encname}(b, v):")
            self.lines += body_e or ["    pass"]
            self.lines.append("")
            self.lines.append(f"def {decname}(m, p):")
            self.lines += body_d
            self.lines.append("")

    def emit_struct(self, t: dsl.Struct, encname, decname):
        cname = f"C_{t.name}"
        names = [n for n, _ in t.fields]
        self.emit_class(cname, t.name, names)
        # group fields into runs of foldable ones
        groups: list[list[tuple[str, dsl.Type]]] = []
        for name, ft in t.fields:
            if _foldable(ft) is not None and groups and _foldable(groups[-1][0][1]) is not None:
                groups[-1].append((name, ft))
            else:
                groups.append([(name, ft)])
        enc: list[str] = [f"def {encname}(b, v):"]
        dec: list[str] = [f"def {decname}(m, p):"]
        for g in groups:
            codes = [_foldable(ft) for _, ft in g]
            if codes[0] is not None:
                sname = self.fmt("".join(codes))
                size = self.glob[sname].size
                args = []
                for fname, ft in g:
                    r = _resolve(ft)
                    if isinstance(r, dsl.Opaque):
                        enc.append(f"    if len(v.{fname}) != {r.length}: raise XdrError('{t.name}.{fname}: wrong length')")
                        args.append(f"v.{fname}")
                    elif isinstance(r, dsl.Enum):
                        enc.append(f"    if v.{fname} not in {self.enum_set(r)}: raise XdrError('{t.name}.{fname}: bad enum')")
                        args.append(f"v.{fname}")
                    elif r is dsl.Bool:
                        args.append(f"1 if v.{fname} else 0")
                    else:
                        args.append(f"v.{fname}")
                enc.append(f"    b += {sname}.pack({', '.join(args)})")
                targets = "".join(f"f_{fname}, " for fname, _ in g)
                dec.append(f"    {targets}= {sname}.unpack_from(m, p)")
                dec.append(f"    p += {size}")
                for fname, ft in g:
                    r = _resolve(ft)
                    if isinstance(r, dsl.Enum):
                        dec.append(f"    if f_{fname} not in {self.enum_set(r)}: raise XdrError('{t.name}.{fname}: bad enum')")
                    elif r is dsl.Bool:
                        dec.append(f"    if f_{fname} > 1: raise XdrError('bad bool')")
                        dec.append(f"    f_{fname} = f_{fname} == 1")
            else:
                fname, ft = g[0]
                self.enc(ft, f"v.{fname}", "    ", enc)
                self.dec(ft, f"f_{fname}", "    ", dec)
        if len(enc) == 1:
            enc.append("    pass")
        dec.append(f"    return {cname}({', '.join('f_' + n for n in names)}), p")
        self.lines += enc + [""] + dec + [""]

    def emit_union(self, t: dsl.Union, encname, decname):
        cname = f"C_{t.name}"
        self.emit_class(cname, t.name, None)
        disc = _resolve(t.disc)
        if isinstance(disc, dsl.Enum) or disc is dsl.Int:
            dpack = "_I"
        else:
            dpack = "_U"
        enc = [f"def {encname}(b, v):", "    tag = v.tag"]
        dec = [f"def {decname}(m, p):", f"    tag, = {dpack}.unpack_from(m, p)", "    p += 4"]
        if isinstance(disc, dsl.Enum):
            s = self.enum_set(disc)
            enc.append(f"    if tag not in {s}: raise XdrError('{t.name}: bad tag %r' % (tag,))")
            dec.append(f"    if tag not in {s}: raise XdrError('{t.name}: bad tag %d' % tag)")
        elif disc is dsl.Bool:
            enc.append("    tag = 1 if tag else 0")
        enc.append(f"    b += {dpack}.pack(tag)")
        arms = t.arms
        # Map each distinct arm type to an encoder/decoder function name.
        def arm_fns(at):
            if at is dsl.Void:
                return None
            return self.fnames(at)

        if len(arms) > 6:
            tbl_e, tbl_d = f"_AE_{t.name}", f"_AD_{t.name}"
            pairs = {tag: arm_fns(at) for tag, (_, at) in arms.items()}
            enc.append(f"    f = {tbl_e}.get(tag, 0)")
            dec.append(f"    f = {tbl_d}.get(tag, 0)")
            enc.append("    if f is None: return")
            dec.append("    if f is None: return " + cname + "(tag, None), p")
            enc.append("    if f == 0:")
            dec.append("    if f == 0:")
            self._default(t, enc, dec, "        ", cname)
            enc.append("    f(b, v.value)")
            dec.append("    val, p = f(m, p)")
            dec.append(f"    return {cname}(tag, val), p")
            self._deferred_tables.append((tbl_e, tbl_d, pairs))
        else:
            first = True
            for tag, (_, at) in arms.items():
                kw = "if" if first else "elif"
                first = False
                enc.append(f"    {kw} tag == {tag}:")
                dec.append(f"    {kw} tag == {tag}:")
                if at is dsl.Void:
                    enc.append("        pass")
                    dec.append(f"        return {cname}(tag, None), p")
                else:
                    fe, fd = arm_fns(at)
                    enc.append(f"        {fe}(b, v.value)")
                    dec.append(f"        val, p = {fd}(m, p)")
                    dec.append(f"        return {cname}(tag, val), p")
            if first:
                enc.append("    if True:")
                dec.append("    if True:")
            else:
                enc.append("    else:")
                dec.append("    else:")
            self._default(t, enc, dec, "        ", cname)
        self.lines += enc + [""] + dec + [""]

    def _default(self, t, enc, dec, ind, cname):
        if t.default is None:
            enc.append(f"{ind}raise XdrError('{t.name}: bad tag %r' % (tag,))")
            dec.append(f"{ind}raise XdrError('{t.name}: bad tag %d' % tag)")
        elif t.default[1] is dsl.Void:
            enc.append(f"{ind}return")
            dec.append(f"{ind}return {cname}(tag, None), p")
        else:
            fe, fd = self.fnames(t.default[1])
            enc.append(f"{ind}{fe}(b, v.value)")
            enc.append(f"{ind}return")
            dec.append(f"{ind}val, p = {fd}(m, p)")
            dec.append(f"{ind}return {cname}(tag, val), p")

    def emit_class(self, cname, tname, fields):
        if fields is None:  # union
            self.lines += [
                f"class {cname}(_UnionBase):",
                "    __slots__ = ()",
                f"    _name = {tname!r}",
                "",
            ]
            return
        args = ", ".join(fields)
        self.lines += [
            f"class {cname}(_StructBase):",
            f"    __slots__ = {tuple(fields)!r}",
            f"    _name = {tname!r}",
            f"    def __init__(self, {args}):" if fields else "    def __init__(self):",
        ]
        self.lines += [f"        self.{f} = {f}" for f in fields] or ["        pass"]
        self.lines.append("")

    def run(self):
        """Generate the functions and classes of every declaration (into self.lines)."""
        self._deferred_tables = []
        for t in self.spec.types:
            self.emit_functions(t, f"enc_{t.name}", f"dec_{t.name}")

    def module_source(self, imports: bool = True) -> str:
        """The generated code as one self-contained module: the helpers and precompiled
        `struct`s it uses, then the functions and classes, then the union arm tables."""
        head = [
            f"# Generated by nfsd.xdr.compiler from nfsd/xdr/{self.spec.name}.py; do not edit.",
            f"# Regenerate with `python -m nfsd.xdr {self.spec.name} --write`;"
            " tests/test_xdr_generated.py checks it is current.",
            "# cython: language_level=3, binding=False, boundscheck=False, wraparound=False",
            '"""Encoders, decoders and classes of the ' + self.spec.name + ' XDR declarations."""',
            "",
            "import struct as _struct",
            "",
            "from nfsd.xdr.compiler import SPLICE_MIN as _SPLICE_MIN",
            "from nfsd.xdr.compiler import Out as _Out",
            "from nfsd.xdr.compiler import StructBase as _StructBase",
            "from nfsd.xdr.compiler import UnionBase as _UnionBase",
            "from nfsd.xdr.errors import XdrError",
        ]
        for key, (e, d) in sorted(self.external.items() if imports else (), key=lambda kv: kv[1]):
            t = self._external_types[key]
            mod = f"nfsd.xdr.gen_{t._spec_name}"
            head.append(f"from {mod} import enc_{t.name} as {e}")
            head.append(f"from {mod} import dec_{t.name} as {d}")
        head += [
            "",
            '_PAD = (b"", b"\\0\\0\\0", b"\\0\\0", b"\\0")',
            '_U = _struct.Struct(">I")',
            '_I = _struct.Struct(">i")',
            '_TRUE = b"\\0\\0\\0\\1"',
            '_FALSE = b"\\0\\0\\0\\0"',
            "_unpack_from = _struct.unpack_from",
            "_pack = _struct.pack",
        ]
        for fmt, name in self.structs.items():
            head.append(f'{name} = _struct.Struct(">{fmt}")')
        for name in sorted(k for k in self.glob if k.startswith("_E_")):
            head.append(f"{name} = frozenset({sorted(self.glob[name])!r})")
        tail = []
        for tbl_e, tbl_d, pairs in self._deferred_tables:
            for tbl, i in ((tbl_e, 0), (tbl_d, 1)):
                items = ", ".join(f"{k}: {'None' if v is None else v[i]}" for k, v in pairs.items())
                tail.append(f"{tbl} = {{{items}}}")
        tail.append("")
        tail.append(f"TYPES = {tuple(t.name for t in self.spec.types)!r}")
        return "\n".join(head + ["", ""] + self.lines + tail) + "\n"


class StructBase:
    __slots__ = ()
    _name = "?"

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, f) == getattr(other, f) for f in self.__slots__
        )

    def __repr__(self):
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__slots__)
        return f"{self._name}({inner})"

    def _replace(self, **kw):
        new = type(self).__new__(type(self))
        for f in self.__slots__:
            setattr(new, f, kw[f] if f in kw else getattr(self, f))
        return new

    __hash__ = None


class UnionBase:
    __slots__ = ("tag", "value")
    _name = "?"

    def __init__(self, tag, value=None):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return type(self) is type(other) and self.tag == other.tag and self.value == other.value

    def __repr__(self):
        return f"{self._name}({self.tag!r}, {self.value!r})"

    __hash__ = None


def zero(t):
    """A valid default value of type t (zeros, empty lists, first enum member, ...)."""
    t0 = t
    t = _resolve(t)
    if isinstance(t, dsl._Prim):
        return 0
    if t is dsl.Bool:
        return False
    if t is dsl.Void:
        return None
    if isinstance(t, dsl.Enum):
        return t.members[0][1]
    if isinstance(t, dsl.Opaque):
        return bytes(t.length)
    if isinstance(t, dsl.VarOpaque):
        return b""
    if isinstance(t, dsl.Array):
        return [zero(t.elem) for _ in range(t.length)]
    if isinstance(t, (dsl.VarArray, dsl.LinkedList)):
        return []
    if isinstance(t, dsl.Optional):
        return None
    if isinstance(t, dsl.Struct):
        return t.cls(*[zero(ft) for _, ft in t.fields])
    if isinstance(t, dsl.Union):
        for tag, (_, at) in t.arms.items():
            return t.cls(tag, zero(at))
        return t.cls(0, None)
    raise TypeError(f"no zero for {t0!r}")


def generate(spec: dsl.Spec) -> str:
    """The module the compiler generates for `spec` (what `python -m nfsd.xdr` writes)."""
    gen = _Gen(spec)
    gen.run()
    return gen.module_source()


# Set by `python -m nfsd.xdr` while it generates: the protocols' modules may be missing or
# stale then, so the declarations are compiled from scratch.
GENERATING = False


def compile_spec(spec: dsl.Spec, module: str | None = None):
    """Compile all declarations of `spec`; returns a namespace of classes, types and constants.

    `module` names the generated module of `spec` (`nfsd.xdr.gen_<name>`, which a build may
    have compiled to C); without it (or while `python -m nfsd.xdr` writes it) the code is
    generated and run now (for declarations that have no module, as in the tests).

    In the namespace, a struct or union name is its generated class (with `_xdr` pointing at
    the declaration); every other name is its declaration. Every declaration gets `enc`/`dec`
    attributes holding its compiled functions, and struct/union declarations a `cls`.
    """
    if module is None or GENERATING:
        gen = _Gen(spec)
        gen.run()
        src = gen.module_source(imports=False)
        glob = dict(gen.glob)
        exec(compile(src, f"<xdr:{spec.name}>", "exec"), glob)
    else:
        import importlib

        glob = vars(importlib.import_module(module))
        names = tuple(t.name for t in spec.types)
        if glob.get("TYPES") != names:
            raise ImportError(f"{module.__name__} does not match the declarations in "
                              f"nfsd/xdr/{spec.name}.py: run `python -m nfsd.xdr {spec.name} "
                              "--write`")
        src = None
    ns = SimpleNamespace()
    for k, v in spec.consts.items():
        setattr(ns, k, v)
    for t in spec.types:
        t._spec_name = spec.name
        t.enc = glob[f"enc_{t.name}"]
        t.dec = glob[f"dec_{t.name}"]
        if isinstance(t, (dsl.Struct, dsl.Union)):
            cls = glob[f"C_{t.name}"]
            cls._xdr = t
            cls.__qualname__ = cls.__name__ = t.name
            t.cls = cls
            setattr(ns, t.name, cls)
        else:
            r = _resolve(t)
            # A typedef of a struct or union is exported as that class (it constructs values).
            setattr(ns, t.name, r.cls if isinstance(r, (dsl.Struct, dsl.Union)) and r.cls else t)
    ns._spec = spec
    return ns


# Void has nothing on the wire; give it the same enc/dec interface as compiled declarations.
dsl.Void.enc = lambda b, v: None
dsl.Void.dec = lambda m, p: (None, p)
