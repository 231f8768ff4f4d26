"""The notation in which wire types are declared (RFC 4506 XDR, written as Python).

A protocol module creates a `Spec`, declares its constants and types on it in dependency order,
and calls `spec.compile()`. The compiler (`nfsd.xdr.compiler`) turns every declaration into
straight-line Python: one encoder and one decoder per type, runs of fixed-size fields folded
into a single `struct.Struct`, generated `__slots__` classes for structs and unions.

Value model (what encoders take and decoders return):

  Int, UInt, Hyper, UHyper ......... int
  Bool ............................. bool
  Enum ............................. int (values checked against the declared set)
  Opaque(n), VarOpaque(m), String(m) bytes (VarOpaque(view=True): a memoryview of the input)
  Array(T, n), VarArray(T, m) ...... list
  Optional(T) ...................... None or the value
  LinkedList(T) .................... list (wire: the XDR `T *next` chain, decoded without recursion)
  Struct ........................... instance of the generated class (fields as attributes)
  Union ............................ instance of the generated class: `.tag`, `.value`
  Void ............................. None

Lengths: VarOpaque/String/VarArray without a maximum are still bounded, by `Limits` given to
the decoder (the remaining input is always an upper bound: a length that cannot fit in what is
left is rejected before anything is allocated).
"""

from __future__ import annotations


class Type:
    """Base of every type expression. `name` is set for named (declared) types."""

    name: str | None = None
    # Set by the compiler on named types: the Python names of the generated functions.
    _enc_name: str | None = None
    _dec_name: str | None = None

    def fixed_size(self) -> int | None:
        """Encoded size in bytes if every value of this type has the same size."""
        return None

    def min_size(self) -> int:
        """Smallest possible encoded size (used to bound array counts before allocating)."""
        return 0


class _Prim(Type):
    def __init__(self, code: str, size: int, pyname: str):
        self.code, self.size, self.pyname = code, size, pyname

    def fixed_size(self):
        return self.size

    def min_size(self):
        return self.size

    def __repr__(self):
        return self.pyname


Int = _Prim("i", 4, "Int")
UInt = _Prim("I", 4, "UInt")
Hyper = _Prim("q", 8, "Hyper")
UHyper = _Prim("Q", 8, "UHyper")


class _Bool(Type):
    def fixed_size(self):
        return 4

    def min_size(self):
        return 4

    def __repr__(self):
        return "Bool"


Bool = _Bool()


class _Void(Type):
    def fixed_size(self):
        return 0

    def __repr__(self):
        return "Void"


Void = _Void()


class Opaque(Type):
    """Fixed-length opaque data: exactly `length` bytes (padded to 4 on the wire)."""

    def __init__(self, length: int):
        self.length = length

    def fixed_size(self):
        return (self.length + 3) & ~3

    def min_size(self):
        return self.fixed_size()


class VarOpaque(Type):
    """Variable-length opaque<max>. `view=True` decodes to a memoryview of the input (payloads)."""

    def __init__(self, max: int | None = None, view: bool = False):
        self.max, self.view = max, view

    def min_size(self):
        return 4


class String(VarOpaque):
    """XDR string<max>; carried as bytes (NFS names are byte strings on Linux file systems)."""


class Array(Type):
    def __init__(self, elem: Type, length: int):
        self.elem, self.length = elem, length

    def fixed_size(self):
        s = self.elem.fixed_size()
        return None if s is None else s * self.length

    def min_size(self):
        return self.elem.min_size() * self.length


class VarArray(Type):
    def __init__(self, elem: Type, max: int | None = None):
        self.elem, self.max = elem, max

    def min_size(self):
        return 4


class Optional(Type):
    """XDR optional data `T *name`: a bool followed by the value when true."""

    def __init__(self, elem: Type):
        self.elem = elem

    def min_size(self):
        return 4


class LinkedList(Type):
    """An XDR chain `struct T { ...; T *next; }` headed by `T *first`, as a Python list.

    Wire form: for each element a TRUE bool followed by the element, then a FALSE bool.
    Declared this way (instead of a recursive Optional) so that decoding long directory
    listings needs no recursion.
    """

    def __init__(self, elem: Type, max: int | None = None):
        self.elem, self.max = elem, max

    def min_size(self):
        return 4


class Enum(Type):
    def __init__(self, name: str, members: list[tuple[str, int]]):
        self.name = name
        self.members = list(members)
        self.values = {v for _, v in self.members}
        self.names = {v: n for n, v in self.members}

    def fixed_size(self):
        return 4

    def min_size(self):
        return 4


class Typedef(Type):
    def __init__(self, name: str, target: Type):
        self.name, self.target = name, target

    def fixed_size(self):
        return self.target.fixed_size()

    def min_size(self):
        return self.target.min_size()


class Struct(Type):
    def __init__(self, name: str, fields: list[tuple[str, Type]]):
        self.name = name
        self.fields = list(fields)
        self.cls = None

    def fixed_size(self):
        total = 0
        for _, t in self.fields:
            s = t.fixed_size()
            if s is None:
                return None
            total += s
        return total

    def min_size(self):
        return sum(t.min_size() for _, t in self.fields)


class Union(Type):
    """Discriminated union. `arms` maps a case value (or a tuple of values) to (field name, type);
    `default` is a (field name, type) pair, `Void`, or None when other tags are invalid."""

    def __init__(self, name: str, disc: Type, arms: dict, default=None):
        self.name = name
        self.disc = disc
        self.arms: dict[int, tuple[str | None, Type]] = {}
        for case, arm in arms.items():
            arm = _arm(arm)
            for c in case if isinstance(case, tuple) else (case,):
                self.arms[int(c)] = arm
        self.default = None if default is None else _arm(default)
        self.cls = None

    def min_size(self):
        return 4


def _arm(arm):
    if arm is Void or arm is None:
        return (None, Void)
    if isinstance(arm, Type):
        return (None, arm)
    name, t = arm
    return (name, t)


class Spec:
    """A registry of declarations, compiled together into one namespace."""

    def __init__(self, name: str):
        self.name = name
        self.consts: dict[str, int] = {}
        self.types: list[Type] = []
        self.by_name: dict[str, Type] = {}

    def _add(self, t: Type) -> Type:
        if t.name in self.by_name:
            raise ValueError(f"duplicate declaration {t.name}")
        self.types.append(t)
        self.by_name[t.name] = t
        return t

    def const(self, name: str, value: int) -> int:
        self.consts[name] = value
        return value

    def enum(self, name: str, members) -> Enum:
        """members: list of (NAME, value) pairs; each name also becomes a constant."""
        e = Enum(name, members)
        for n, v in e.members:
            self.consts[n] = v
        return self._add(e)

    def typedef(self, name: str, target: Type) -> Typedef:
        return self._add(Typedef(name, target))

    def struct(self, name: str, fields) -> Struct:
        return self._add(Struct(name, fields))

    def union(self, name: str, disc: Type, arms: dict, default=None) -> Union:
        return self._add(Union(name, disc, arms, default))

    def include(self, other: "Spec"):
        """Make another spec's declarations usable by name here (they are compiled there)."""
        for k, v in other.consts.items():
            self.consts.setdefault(k, v)

    def compile(self, module: str | None = None):
        """Compile the declarations (see `compiler.compile_spec`); `module` names the
        generated module that holds their code."""
        from .compiler import compile_spec

        return compile_spec(self, module)
