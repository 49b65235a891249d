#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Race two writes into one host page of a vdisk device (test_pageshare_01).

Usage: page_race.py DEV PAIRS {fill|zero|first}

Two processes write at once, released together by a barrier, PAIRS - 1
times:

  fill:  in 64 KiB cluster i of an extended-L2 qcow2 image over a backing
         file of 0xbb: 512 bytes of 0xaa at 4 KiB, inside an unallocated
         2 KiB subcluster, which the core fills around them from the
         backing file; and 2 KiB of 0x22 at 6 KiB, the next subcluster,
         allocated beforehand: an in-place direct write to the same host
         page.
  zero:  in 64 KiB cluster i of a qcow2 image: BLKZEROOUT of 512 bytes at
         0, written as zero data in place; and 2 KiB of 0x22 at 2 KiB, in
         place.
  first: on a raw image of zeros whose format was detected: 512 bytes of
         0xaa at 0, which vdisk checks on a copy for another format's
         magic; and 2 KiB of pair-dependent bytes at 2 KiB.  Always the
         same page, so each pair is read back at once.

The second write starts 0 to 2 ms after the first (50 us steps), to sweep
the window.  The device is opened with O_DIRECT.  "prep-fill" and
"prep-zero" write 0x11 over the second write's range of every cluster
beforehand (allocating it).  Then the first 8 KiB of every pair's cluster
are compared with what they must hold; the pairs that differ are reported,
and the exit status is 1 if any.
"""
import fcntl
import mmap
import multiprocessing as mp
import os
import struct
import sys
import time

BLKZEROOUT = 0x127F
CLUSTER = 65536
SHAPES = {
    # mode: (first write's offset and length, second write's)
    "fill": ((4096, 512), (6144, 2048)),
    "zero": ((0, 512), (2048, 2048)),
    "first": ((0, 512), (2048, 2048)),
}
# What the first 8 KiB hold around the two writes.
BACKGROUND = {"fill": 0xbb, "zero": 0, "first": 0}


def buf(byte, size=4096):
    m = mmap.mmap(-1, size)
    m.write(bytes([byte]) * size)
    return m


def base(mode, i):
    return 0 if mode == "first" else i * CLUSTER


def value(mode, i):
    return 1 + i % 255 if mode == "first" else 0x22


def expected(mode, i):
    (a_off, a_len), (b_off, b_len) = SHAPES[mode]
    page = bytearray([BACKGROUND[mode]]) * 8192
    page[a_off:a_off + a_len] = (b"\0" if mode == "zero" else b"\xaa") * a_len
    page[b_off:b_off + b_len] = bytes([value(mode, i)]) * b_len
    return bytes(page)


def check(fd, mode, i, page):
    os.preadv(fd, [page], base(mode, i))
    return page[:] == expected(mode, i)


def first_writer(dev, pairs, mode, barrier):
    (a_off, a_len), _ = SHAPES[mode]
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    data = memoryview(buf(0xaa))[:a_len]
    for i in range(1, pairs):
        barrier.wait()
        if mode == "zero":
            fcntl.ioctl(fd, BLKZEROOUT,
                        struct.pack("QQ", base(mode, i) + a_off, a_len))
        else:
            os.pwritev(fd, [data], base(mode, i) + a_off)
        if mode == "first":
            barrier.wait()


def second_writer(dev, pairs, mode, barrier, lost):
    _, (b_off, b_len) = SHAPES[mode]
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    datas = [memoryview(buf(v))[:b_len] for v in range(256)]
    page = mmap.mmap(-1, 8192)
    bad = 0
    for i in range(1, pairs):
        barrier.wait()
        # A process of its own: the spin holds no one else up.
        until = time.perf_counter() + (i % 40) * 50e-6
        while time.perf_counter() < until:
            pass
        os.pwritev(fd, [datas[value(mode, i)]], base(mode, i) + b_off)
        if mode == "first":
            barrier.wait()
            if not check(fd, mode, i, page):
                bad += 1
                if bad <= 8:
                    lost.put(i)
    lost.put(-bad - 1)


def main():
    dev, pairs, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode.startswith("prep-"):
        _, (b_off, b_len) = SHAPES[mode[5:]]
        fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
        old = memoryview(buf(0x11))[:b_len]
        for i in range(pairs):
            os.pwritev(fd, [old], i * CLUSTER + b_off)
        os.fsync(fd)
        return 0

    barrier = mp.Barrier(2)
    lost = mp.Queue()
    procs = [mp.Process(target=first_writer, args=(dev, pairs, mode, barrier)),
             mp.Process(target=second_writer,
                        args=(dev, pairs, mode, barrier, lost))]
    start = time.time()
    for p in procs:
        p.start()
    shown, bad = [], None
    while bad is None:
        i = lost.get()
        if i < 0:
            bad = -i - 1
        else:
            shown.append(i)
    for p in procs:
        p.join()
        if p.exitcode:
            print("# a writer failed (exit %d)" % p.exitcode)
            return 1
    took = time.time() - start

    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    os.fsync(fd)
    if mode != "first":
        page = mmap.mmap(-1, 8192)
        for i in range(1, pairs):
            if not check(fd, mode, i, page):
                bad += 1
                if len(shown) < 8:
                    shown.append(i)
    print("# %s: %d write pairs in %.1f s, %d lost a write%s" %
          (mode, pairs - 1, took, bad,
           " (pairs %s)" % shown if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
