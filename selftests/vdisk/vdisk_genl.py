#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Minimal generic netlink client for the vdisk family, for tests only.

vdiskctl is the real client; this one exists so tests can send what
vdiskctl never would: missing, duplicated, oversized and wrongly typed
attributes, unknown flag bits, bogus descriptors.  It reads the constants
straight from include/uapi/linux/vdisk.h so it cannot drift from the ABI.

Usage as a tool:
  vdisk_genl.py add FD=3 PATH=/x FLAGS=0x1 ...   (attribute=value pairs)
  vdisk_genl.py get [INDEX=0]   |   vdisk_genl.py del INDEX=0
Prints the reply attributes, or "error ERRNO: extack message" and exits 1.
"""
import os
import re
import socket
import struct
import sys

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_MCAST_GROUPS = 7
NLM_F_REQUEST = 1
NLM_F_MULTI = 2
NLM_F_ACK = 4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2
NLA_F_NESTED = 1 << 15

HERE = os.path.dirname(os.path.abspath(__file__))
UAPI = os.path.join(HERE, "..", "..", "include", "uapi", "linux", "vdisk.h")


def _load_uapi():
    """Enum values and #defines from the uapi header."""
    text = open(UAPI).read()
    consts = {}
    for body in re.findall(r"enum\s+\w+\s*{([^}]*)}", text):
        val = 0
        for item in body.split(","):
            item = re.sub(r"/\*.*?\*/", "", item, flags=re.S).strip()
            if not item:
                continue
            if "=" in item:
                name, expr = [x.strip() for x in item.split("=")]
                val = int(expr, 0)
            else:
                name = item
            consts[name] = val
            val += 1
    for name, expr in re.findall(r"#define\s+(VDISK_\w+)\s+\(?(1U << \d+|\d+)\)?\s*$", text, re.M):
        m = re.match(r"1U << (\d+)", expr)
        consts[name] = (1 << int(m.group(1))) if m else int(expr)
    return consts


C = _load_uapi()

# Attribute types for encoding; anything else must be given as raw bytes.
ATTR_TYPES = {
    "INDEX": "u32", "NAME": "str", "DISK_NAME": "str", "FD": "u32", "PATH": "str",
    "FORMAT": "u32", "OFFSET": "u64", "SIZELIMIT": "u64", "SIZE": "u64",
    "FLAGS": "u32", "CACHE": "u32", "SECTOR_SIZE": "u32", "DEL_FLAGS": "u32",
    "SET_FLAGS": "u32", "MAJOR": "u32", "MINOR": "u32", "OPENERS": "u32",
    "SNAPSHOT": "str", "CACHE_SIZE": "u64",
}


class NetlinkError(Exception):
    def __init__(self, err, msg):
        super().__init__(f"error {err}: {msg}")
        self.errno = err
        self.msg = msg


def nla(atype, payload):
    hdr = struct.pack("HH", 4 + len(payload), atype)
    pad = (4 - len(payload) % 4) % 4
    return hdr + payload + b"\0" * pad


def enc(name, value):
    """Encode attribute NAME (without VDISK_ATTR_) from a Python value."""
    atype = C["VDISK_ATTR_" + name]
    kind = ATTR_TYPES.get(name)
    if isinstance(value, bytes):
        return nla(atype, value)
    if kind == "u32":
        return nla(atype, struct.pack("I", value & 0xFFFFFFFF))
    if kind == "u64":
        return nla(atype, struct.pack("Q", value & 0xFFFFFFFFFFFFFFFF))
    if kind == "str":
        return nla(atype, value.encode() + b"\0")
    raise ValueError(name)


def parse_attrs(data):
    attrs = {}
    off = 0
    while off + 4 <= len(data):
        alen, atype = struct.unpack_from("HH", data, off)
        if alen < 4:
            break
        attrs.setdefault(atype & 0x3FFF, []).append(data[off + 4:off + alen])
        off += (alen + 3) & ~3
    return attrs


class Genl:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.seq = 1
        self.family, self.groups = self._resolve("vdisk")

    def _resolve(self, name):
        attrs = nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
        msgs = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, attrs, version=1)
        a = parse_attrs(msgs[0][1])
        fid = struct.unpack("H", a[CTRL_ATTR_FAMILY_ID][0][:2])[0]
        groups = {}
        for grp in parse_attrs(a.get(CTRL_ATTR_MCAST_GROUPS, [b""])[0]).values():
            g = parse_attrs(grp[0])
            groups[g[1][0].rstrip(b"\0").decode()] = struct.unpack("I", g[2][0])[0]
        return fid, groups

    def request(self, family, cmd, payload=b"", flags=0, version=1):
        """Send one message; return [(cmd, attr_bytes)] or raise NetlinkError."""
        self.seq += 1
        body = struct.pack("BBH", cmd, version, 0) + payload
        hdr = struct.pack("IHHII", 16 + len(body), family,
                          NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0)
        self.sock.send(hdr + body)
        out = []
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off < len(data):
                mlen, mtype, mflags, mseq, _ = struct.unpack_from("IHHII", data, off)
                msg = data[off:off + mlen]
                off += (mlen + 3) & ~3
                if mseq != self.seq:
                    continue
                if mtype == NLMSG_ERROR:
                    err = struct.unpack_from("i", msg, 16)[0]
                    if err == 0:
                        return out
                    # NETLINK_CAP_ACK: only the request's header follows.
                    tlv = parse_attrs(msg[16 + 4 + 16:])
                    text = tlv.get(NLMSGERR_ATTR_MSG, [b""])[0].rstrip(b"\0").decode()
                    raise NetlinkError(-err, text)
                if mtype == NLMSG_DONE:
                    return out
                out.append((msg[16], msg[20:]))

    def cmd(self, cmd, attrs=b"", dump=False):
        if isinstance(cmd, str):
            cmd = C["VDISK_CMD_" + cmd.upper()]
        return self.request(self.family, cmd, attrs, NLM_F_DUMP if dump else 0)


def decode(attr_bytes):
    """Reply attributes as {NAME: value}."""
    names = {v: k[len("VDISK_ATTR_"):] for k, v in C.items()
             if k.startswith("VDISK_ATTR_") and not k.endswith("MAX")}
    out = {}
    for atype, vals in parse_attrs(attr_bytes).items():
        name = names.get(atype, str(atype))
        v = vals[0]
        kind = ATTR_TYPES.get(name)
        if kind == "u32":
            out[name] = struct.unpack("I", v[:4])[0]
        elif kind == "u64":
            out[name] = struct.unpack("Q", v[:8])[0]
        elif kind == "str":
            out[name] = v.rstrip(b"\0").decode()
        else:
            out[name] = v
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    g = Genl()
    payload = b""
    for kv in argv[2:]:
        k, v = kv.split("=", 1)
        kind = ATTR_TYPES.get(k)
        payload += enc(k, int(v, 0) if kind in ("u32", "u64") else v)
    dump = argv[1] == "get" and len(argv) == 2
    try:
        for _, attrs in g.cmd(argv[1], payload, dump=dump):
            print(decode(attrs))
    except NetlinkError as e:
        print(f"error {e.errno}: {e.msg}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
