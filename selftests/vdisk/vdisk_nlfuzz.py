#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Generic-netlink fuzzer for the vdisk family (test_nlfuzz_*).

  vdisk_nlfuzz.py [--seed N] [--count N] [--unpriv] [--dir DIR]

Sends COUNT random and malformed messages to every command of the family
(valid commands and unknown ones, both versions, with and without
NLM_F_DUMP): random attribute sets with missing, duplicated, truncated,
oversized and wrongly typed attributes, random nested BACKING arrays, and
descriptors of everything but an image (sockets, directories, write-only
and O_PATH files, pipes, an eventfd, /dev/null, the netlink socket itself,
closed and huge numbers), plus valid image descriptors now and then.

Every message must get an answer (an error with errno, or a reply) within
the socket timeout.  A device that a well-formed ADD attached is detached
at once and counted.  Unprivileged (--unpriv): ADD/DEL/SET must always be
refused with EPERM.  Prints one summary line:
  sent N errors N replies N attached N errnos {...}
and exits 1 on any violation.
"""
import argparse
import collections
import errno
import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vdisk_genl as vg  # noqa: E402

C = vg.C
ATTR_MAX = C["__VDISK_ATTR_MAX"] - 1
LAYER_MAX = C["__VDISK_LAYER_ATTR_MAX"] - 1
CMDS = [C["VDISK_CMD_ADD"], C["VDISK_CMD_DEL"], C["VDISK_CMD_GET"], C["VDISK_CMD_SET"]]
PRIV_CMDS = {C["VDISK_CMD_ADD"], C["VDISK_CMD_DEL"], C["VDISK_CMD_SET"]}
UNPRIV_OK = {errno.EPERM, errno.EINVAL, errno.EOPNOTSUPP, errno.ERANGE}
ATTR_NAMES = {v: k[len("VDISK_ATTR_"):] for k, v in C.items()
              if k.startswith("VDISK_ATTR_") and not k.endswith("MAX")}


def make_fds(d, images):
    """Descriptors of everything; returns (hostile fds, image fds)."""
    fds = []
    os.makedirs(d, exist_ok=True)
    fds.append(os.open(d, os.O_RDONLY | os.O_DIRECTORY))
    wo = os.path.join(d, "wo.img")
    with open(wo, "wb") as f:
        f.truncate(1 << 20)
    fds.append(os.open(wo, os.O_WRONLY))
    fds.append(os.open(wo, os.O_PATH))
    fds.append(os.open(wo, os.O_WRONLY | os.O_APPEND))
    fds.extend(os.pipe())
    s1, s2 = socket.socketpair()
    fds += [s1.detach(), s2.detach()]
    fds.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach())
    fds.append(os.open("/dev/null", os.O_RDWR))
    fds.append(os.open("/proc/self/status", os.O_RDONLY))
    try:
        fds.append(os.eventfd(0))
    except (AttributeError, OSError):
        pass
    tiny = os.path.join(d, "tiny.img")
    with open(tiny, "wb") as f:
        f.write(b"QFI\xfb" + b"\0" * 100)
    fds.append(os.open(tiny, os.O_RDONLY))
    img_fds = []
    for p in images:
        img_fds.append(os.open(p, os.O_RDWR))
        img_fds.append(os.open(p, os.O_RDONLY))
    return fds, img_fds


class Fuzzer:
    def __init__(self, g, seed, fds, img_fds, unpriv):
        self.g = g
        self.r = random.Random(seed)
        self.fds = fds
        self.img_fds = img_fds
        self.unpriv = unpriv
        closed = os.open("/dev/null", os.O_RDONLY)
        os.close(closed)
        self.bad_fds = [closed, 1 << 20, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000,
                        g.sock.fileno()]

    def rand_bytes(self, n):
        return bytes(self.r.getrandbits(8) for _ in range(n))

    def fd_value(self):
        x = self.r.random()
        if x < 0.45:
            return self.r.choice(self.fds)
        if x < 0.7:
            return self.r.choice(self.bad_fds)
        if x < 0.95 and self.img_fds:
            return self.r.choice(self.img_fds)
        return self.r.getrandbits(32)

    def payload(self, name):
        """A value for attribute NAME: usually of its type, often not."""
        r = self.r
        kind = vg.ATTR_TYPES.get(name)
        x = r.random()
        if x < 0.15:      # wrong size
            return self.rand_bytes(r.choice([0, 1, 2, 3, 5, 7, 9, 12, 16]))
        if x < 0.2:       # oversized
            return self.rand_bytes(r.choice([70, 300, 1100, 4200, 9000]))
        if name == "FD":
            return struct.pack("I", self.fd_value())
        if kind == "u32":
            return struct.pack("I", r.choice([0, 1, 2, 3, 4, 7, 512, 4096, 1000,
                                              0xFFFFFFFF, r.getrandbits(32),
                                              1 << r.randrange(32)]))
        if kind == "u64":
            return struct.pack("Q", r.choice([0, 512, 1 << 20, 1 << 40, (1 << 64) - 1,
                                              (1 << 63), r.getrandbits(64),
                                              r.randrange(1 << 30) * 512]))
        if kind == "str":
            n = r.choice([0, 1, 5, 31, 32, 63, 64, 65, 200, 1023, 1024, 4095, 4096, 5000])
            alpha = "abcXYZ019.-_:/ \n\x7f\x01vdisk"
            s = "".join(r.choice(alpha) for _ in range(n)).encode()
            if r.random() < 0.1:
                s = b"vdisk" + str(r.randrange(100)).encode()
            return s + (b"\0" if r.random() < 0.85 else b"")
        if name == "BACKING":
            return self.backing()
        return self.rand_bytes(r.choice([0, 4, 8]))

    def backing(self):
        r = self.r
        out = b""
        for i in range(r.choice([0, 1, 1, 2, 3, 17, 20])):
            inner = b""
            for _ in range(r.randrange(4)):
                t = r.randrange(LAYER_MAX + 3)
                if t == C["VDISK_LAYER_ATTR_FD"]:
                    v = struct.pack("I", self.fd_value())
                elif t == C["VDISK_LAYER_ATTR_FORMAT"]:
                    v = struct.pack("I", r.choice([0, 1, 2, 3, 0xFFFFFFFF]))
                else:
                    v = self.rand_bytes(r.randrange(12)) + (b"\0" if r.random() < 0.7 else b"")
                inner += vg.nla(t, v)
            flag = vg.NLA_F_NESTED if r.random() < 0.8 else 0
            out += vg.nla(r.choice([i + 1, i + 1, 0, 0xFFF]) | flag, inner)
        if r.random() < 0.1:
            out += self.rand_bytes(r.randrange(1, 9))   # trailing garbage
        return out

    def message(self):
        r = self.r
        attrs = b""
        for _ in range(r.choice([0, 1, 1, 2, 2, 3, 4, 6, 10])):
            t = r.randrange(ATTR_MAX + 4) if r.random() < 0.95 else r.getrandbits(14)
            name = ATTR_NAMES.get(t, "?")
            val = self.payload(name)
            a = vg.nla(t | (vg.NLA_F_NESTED if name == "BACKING" and r.random() < 0.8 else 0), val)
            attrs += a
            if r.random() < 0.1:
                attrs += a    # duplicate
        x = r.random()
        if x < 0.03:
            attrs = attrs[:r.randrange(len(attrs) + 1)]      # truncated
        elif x < 0.05 and len(attrs) >= 4:
            alen = r.choice([0, 1, 3, 0xFFFF, len(attrs) + 4])
            attrs = struct.pack("H", alen) + attrs[2:]       # bad nla_len
        elif x < 0.07:
            attrs = self.rand_bytes(r.randrange(40))         # garbage
        return attrs

    def one(self):
        r = self.r
        x = r.random()
        cmd = r.choice(CMDS) if x < 0.93 else r.choice([0, 5, 6, 7, 8, 9, 200, 255])
        version = 1 if r.random() < 0.95 else r.choice([0, 2, 255])
        flags = vg.NLM_F_DUMP if r.random() < 0.15 else 0
        if cmd == C["VDISK_CMD_ADD"] and self.img_fds and r.random() < 0.3:
            # Nearly valid: an image and a few well-typed options, so
            # the attach path itself sees odd values.
            attrs = vg.enc("FD", r.choice(self.img_fds))
            for name in r.sample(["OFFSET", "SIZELIMIT", "FLAGS", "CACHE", "SECTOR_SIZE",
                                  "FORMAT", "NAME", "CACHE_SIZE", "SNAPSHOT", "INDEX",
                                  "BACKING", "PATH"], r.randrange(4)):
                v = self.payload(name)
                while name != "BACKING" and len(v) not in (4, 8) and vg.ATTR_TYPES[name] != "str":
                    v = self.payload(name)
                if vg.ATTR_TYPES.get(name) == "u32" and len(v) == 4:
                    v = struct.pack("I", r.choice([0, 1, 2, 3, 512, 4096,
                                                   struct.unpack("I", v)[0]]))
                if vg.ATTR_TYPES.get(name) == "u64" and len(v) == 8:
                    v = struct.pack("Q", r.choice([0, 512, 4096, 1 << 20,
                                                   struct.unpack("Q", v)[0]]))
                attrs += vg.nla(C["VDISK_ATTR_" + name] |
                                (vg.NLA_F_NESTED if name == "BACKING" else 0), v)
            return cmd, 1, 0, attrs
        return cmd, version, flags, self.message()


def detach(g, idx):
    try:
        g.cmd("del", vg.enc("INDEX", idx))
    except vg.NetlinkError as e:
        if e.errno != errno.ENODEV and e.errno != errno.ENOENT:
            raise


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--unpriv", action="store_true")
    ap.add_argument("--dir", default="/tmp/nlfuzz")
    ap.add_argument("images", nargs="*")
    a = ap.parse_args()

    g = vg.Genl()
    g.sock.settimeout(30)
    fds, img_fds = make_fds(a.dir, a.images)
    fz = Fuzzer(g, a.seed, fds, img_fds, a.unpriv)
    stats = collections.Counter()
    errnos = collections.Counter()
    bad = []
    # Every hostile descriptor as the image and as a backing layer: always
    # a clean error.
    for fd in fz.fds + fz.bad_fds:
        for attrs in (vg.enc("FD", fd),
                      (vg.enc("FD", img_fds[0]) if img_fds else b"") +
                      vg.nla(C["VDISK_ATTR_BACKING"] | vg.NLA_F_NESTED,
                             vg.nla(1 | vg.NLA_F_NESTED,
                                    vg.nla(C["VDISK_LAYER_ATTR_FD"], struct.pack("I", fd))))):
            stats["sent"] += 1
            try:
                replies = g.cmd("add", attrs)
            except vg.NetlinkError as e:
                stats["errors"] += 1
                errnos[errno.errorcode.get(e.errno, str(e.errno))] += 1
                if a.unpriv and e.errno not in UNPRIV_OK:
                    bad.append(f"unprivileged ADD of fd {fd} got {e.errno}")
                continue
            bad.append(f"ADD with descriptor {fd} ({os.readlink('/proc/self/fd/%d' % fd) if fd < 1 << 20 and os.path.exists('/proc/self/fd/%d' % fd) else '?'}) succeeded")
            for _, rattrs in replies:
                detach(g, vg.decode(rattrs).get("INDEX", 1 << 31))
    for i in range(a.count):
        cmd, version, flags, attrs = fz.one()
        stats["sent"] += 1
        try:
            replies = g.request(g.family, cmd, attrs, flags, version)
        except vg.NetlinkError as e:
            stats["errors"] += 1
            errnos[errno.errorcode.get(e.errno, str(e.errno))] += 1
            # Unprivileged: refused before the handler looks at anything
            # (policy and header errors come first, which is fine).
            if a.unpriv and cmd in PRIV_CMDS and e.errno not in UNPRIV_OK:
                bad.append(f"#{i} unprivileged cmd {cmd} got {e.errno} ({e.msg})")
            if e.errno <= 0 or e.errno > 4095:
                bad.append(f"#{i} cmd {cmd}: bogus errno {e.errno}")
            continue
        except socket.timeout:
            bad.append(f"#{i} cmd {cmd}: no answer")
            break
        stats["replies"] += 1
        if a.unpriv and cmd in PRIV_CMDS:
            bad.append(f"#{i} unprivileged cmd {cmd} succeeded")
        if cmd == C["VDISK_CMD_ADD"]:
            for _, rattrs in replies:
                d = vg.decode(rattrs)
                if "INDEX" not in d:
                    bad.append(f"#{i} ADD reply without INDEX: {d}")
                    continue
                stats["attached"] += 1
                detach(g, d["INDEX"])
    # Whatever SET/ADD left behind (a rejected DEL cannot leave anything).
    for _, rattrs in g.cmd("get", dump=True):
        d = vg.decode(rattrs)
        if not a.unpriv:
            detach(g, d["INDEX"])
            stats["leftover"] += 1
    for fd in fds + img_fds:
        os.close(fd)
    print("sent %d errors %d replies %d attached %d leftover %d errnos %s" % (
        stats["sent"], stats["errors"], stats["replies"], stats["attached"],
        stats["leftover"], dict(errnos.most_common())))
    for b in bad[:20]:
        print("VIOLATION:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
