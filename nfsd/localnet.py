"""The networks this host is directly attached to: who `nfsd serve DIR` lets in by default.

A lab exports a directory to the machines next to it. The networks a host reaches without a
router (its on-link routes, plus loopback) say who those are, without trusting the whole
Internet when the host also has a public address. Read from the kernel's routing tables in
/proc (no tool or library needed); a host without them gets loopback only.
"""

from __future__ import annotations

import ipaddress

RTF_UP, RTF_GATEWAY, RTF_REJECT = 0x1, 0x2, 0x200
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _v4(text: str):
    """Routes of /proc/net/route: (Iface, Destination, Gateway, Flags, ..., Mask, ...), the
    addresses as little-endian hex."""
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        flags = int(f[3], 16)
        if not flags & RTF_UP or flags & (RTF_GATEWAY | RTF_REJECT) or int(f[2], 16):
            continue
        dest = ipaddress.IPv4Address(int(f[1], 16).to_bytes(4, "little"))
        mask = ipaddress.IPv4Address(int(f[7], 16).to_bytes(4, "little"))
        if int(mask):  # not a default route through a device
            yield ipaddress.ip_network(f"{dest}/{mask}", strict=False)


def _v6(text: str):
    """Routes of /proc/net/ipv6_route: destination, prefix length, source, its length,
    next hop, metric, refcount, use, flags, device (hex, no separators)."""
    for line in text.splitlines():
        f = line.split()
        if len(f) < 10:
            continue
        plen, flags = int(f[1], 16), int(f[8], 16)
        if not plen or not flags & RTF_UP or flags & (RTF_GATEWAY | RTF_REJECT) or int(f[4], 16):
            continue
        net = ipaddress.ip_network((ipaddress.IPv6Address(int(f[0], 16)), plen), strict=False)
        if not net.is_multicast and plen < 128:  # /128: the host's own addresses
            yield net


def local_networks(route: str = "/proc/net/route", route6: str = "/proc/net/ipv6_route"):
    """Loopback and every on-link network of this host, IPv4 first, without duplicates."""
    nets = list(LOOPBACK)
    for path, parse in ((route, _v4), (route6, _v6)):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        nets += parse(text)
    return sorted(set(nets), key=lambda n: (n.version, n))
