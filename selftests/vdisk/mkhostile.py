#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Make hostile qcow2 images from good ones made by qemu-img.

  mkhostile.py DIR

Writes DIR/<case>.qcow2 for every case and prints one line per case:
"<case> refuse <regex>" (attach must fail, its message matching the regex)
or "<case> eio" (attach may succeed, but reading the device must fail with
an I/O error and never return wrong data silently) or "<case> ok" (a
strange but valid image that must read back like qemu-img's raw output).
"""
import os
import struct
import subprocess
import sys

D = sys.argv[1]


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def base(name, *qemu_io, size="8M", opts=""):
    path = os.path.join(D, name)
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if opts:
        args += ["-o", opts]
    sh(*args, path, size)
    for c in qemu_io:
        sh("qemu-io", "-c", c, path)
    return path


def hdr(path):
    with open(path, "rb") as f:
        h = f.read(112)
    (magic, version, bfo, bfs, cbits, size, crypt, l1_size, l1_off, rt_off,
     rt_clusters, nb_snap, snap_off) = struct.unpack(">IIQIIQIIQQIIQ", h[:72])
    return dict(version=version, cluster_bits=cbits, l1_size=l1_size,
                l1_off=l1_off, rt_off=rt_off, nb_snap=nb_snap, snap_off=snap_off)


def poke(path, off, fmt, val):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, val))


def peek(path, off, fmt):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def copy(src, name):
    dst = os.path.join(D, name)
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())
    return dst


def first_l2_entry_off(path):
    """File offset of L2 entry 0 of the first L2 table."""
    h = hdr(path)
    l1e = peek(path, h["l1_off"], ">Q")
    return l1e & 0x00FFFFFFFFFFFE00


cases = []
good = base("good.qcow2", "write -P 0x5a 0 64k", "write -P 0xa5 1M 64k")
size = os.path.getsize(good)

# Header fields.
for name, off, fmt, val, rx in [
    ("cbits8", 20, ">I", 8, "cluster_bits 8 out of range"),
    ("cbits22", 20, ">I", 22, "cluster_bits 22 out of range"),
    ("cbits200", 20, ">I", 200, "cluster_bits 200 out of range"),
    ("l1huge", 36, ">I", 0x7FFFFFFF, "exceeds the 32 MiB L1 limit"),
    ("l1zero", 36, ">I", 0, "l1_size 0 too small"),
    ("l1unaligned", 40, ">Q", 0x30008, "L1 table at 0x30008 is not cluster aligned"),
    ("l1header", 40, ">Q", 0, "L1 table at 0x0 overlaps the header"),
    ("l1pasteof", 40, ">Q", 1 << 40, "L1 table at 0x10000000000.* past end of file"),
    ("rtpasteof", 48, ">Q", 1 << 40, "refcount table at 0x10000000000.* past end of file"),
    ("rtunaligned", 48, ">Q", 0x10008, "refcount table at 0x10008 is not cluster aligned"),
    ("hdrlen50", 100, ">I", 50, "header_length 50 too small"),
    ("hdrlenhuge", 100, ">I", 1 << 20, "header_length 1048576 exceeds"),
    ("badversion", 4, ">I", 4, "unsupported qcow2 version 4"),
    ("refcount_order9", 96, ">I", 9, "refcount_order 9 out of range"),
    ("unknownfeature", 72, ">Q", 1 << 20, "unknown incompatible feature bit 20"),
    ("encrypted", 32, ">I", 1, "image is encrypted"),
    ("datafile", 72, ">Q", 1 << 2, "image has an external data file"),
    ("sizehuge", 24, ">Q", 1 << 62, "virtual size 4611686018427387904 too large"),
    ("backingpasteof", 8, ">Q", 1 << 40, "backing file name at 0x10000000000.* outside the header cluster"),
]:
    p = copy(good, name + ".qcow2")
    poke(p, off, fmt, val)
    cases.append((name, "refuse", rx))

# Backing name longer than 1023 bytes.
p = copy(good, "backinglong.qcow2")
poke(p, 8, ">Q", 512)
poke(p, 16, ">I", 2000)
cases.append(("backinglong", "refuse", "backing file name length 2000 exceeds 1023"))

# A file that is only a header.
for name, n in [("only72", 72), ("only104", 104)]:
    p = os.path.join(D, name + ".qcow2")
    with open(good, "rb") as f, open(p, "wb") as g:
        g.write(f.read(n))
    cases.append((name, "refuse", "too small for a v3 header" if n == 72
                  else "L1 table at 0x[0-9a-f]+\\+0x8 is past end of file"))

# Truncated and absurd snapshot tables.
snap = base("snap.qcow2", "write -P 0x11 0 64k")
sh("qemu-img", "snapshot", "-c", "s1", snap)
h = hdr(snap)
p = copy(snap, "snaptrunc.qcow2")
poke(p, 64, ">Q", os.path.getsize(p) - 8)
cases.append(("snaptrunc", "refuse", "snapshot table at 0x[0-9a-f]+ is not cluster aligned"))
p = copy(snap, "snapcount.qcow2")
poke(p, 60, ">I", 0xFFFFFFF)
cases.append(("snapcount", "refuse", "nb_snapshots 268435455 exceeds 65536"))

# L2 entries: past EOF, into metadata (L1 and refcount tables), unaligned.
# (Offset 0 is not hostile: it means "unallocated".)
l2 = first_l2_entry_off(good)
g = hdr(good)
for name, val in [("l2pasteof", (1 << 63) | (1 << 40)),
                  ("l2intol1", (1 << 63) | g["l1_off"]),
                  ("l2intorefcount", (1 << 63) | g["rt_off"]),
                  ("l2unaligned", (1 << 63) | 0x50200)]:
    p = copy(good, name + ".qcow2")
    poke(p, l2, ">Q", val)
    cases.append((name, "eio", ""))

# The L2 table itself out of the file.
p = copy(good, "l2tablepasteof.qcow2")
poke(p, hdr(good)["l1_off"], ">Q", (1 << 63) | (1 << 40))
cases.append(("l2tablepasteof", "eio", ""))

# Compressed descriptors: past EOF, absurd size, garbage data.
raw = os.path.join(D, "pat.raw")
with open(raw, "wb") as f:
    # Compressible, so qemu-img really stores compressed clusters.
    f.write(b"".join(b"line %08d of a compressible file\n" % i for i in range(8000)))
    f.truncate(256 << 10)
comp = os.path.join(D, "comp.qcow2")
sh("qemu-img", "convert", "-c", "-O", "qcow2", raw, comp)
cl2 = first_l2_entry_off(comp)
cbits = hdr(comp)["cluster_bits"]
ent = peek(comp, cl2, ">Q")
x = 62 - (cbits - 8)
off_mask = (1 << x) - 1
p = copy(comp, "comppasteof.qcow2")
poke(p, cl2, ">Q", (ent & ~off_mask) | (1 << 40))
cases.append(("comppasteof", "eio", ""))
p = copy(comp, "compsize.qcow2")
poke(p, cl2, ">Q", ent | (((1 << (62 - x)) - 1) << x))
# Oversized but inside the file: QEMU reads it, so must we.
cases.append(("compsize", "ok", ""))
p = copy(comp, "compgarbage.qcow2")
host = ent & off_mask
with open(p, "r+b") as f:
    f.seek(host)
    f.write(b"\xff" * 64)
cases.append(("compgarbage", "eio", ""))

for name, kind, rx in cases:
    print(name, kind, rx)
