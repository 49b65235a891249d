#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Race two writes into one host page of a vdisk device (test_pageshare_01).

Usage: page_race.py DEV PAIRS {fill|zero|first}

Two threads write at once, released together by a barrier, PAIRS - 1 times:

  fill:  in 64 KiB cluster i of an extended-L2 qcow2 image: 512 bytes of
         0xaa at 4 KiB, inside an unallocated 2 KiB subcluster, which the
         core fills around them from the backing file; and 2 KiB of 0x22
         at 6 KiB, the next subcluster, allocated beforehand: an in-place
         direct write to the same host page.
  zero:  in 64 KiB cluster i of a qcow2 image: BLKZEROOUT of 512 bytes at
         0, written as zero data in place; and 2 KiB of 0x22 at 2 KiB, in
         place.
  first: on a raw image whose format was detected: 512 bytes of 0xaa at 0,
         which vdisk checks on a copy for another format's magic; and 2 KiB
         of pair-dependent bytes at 2 KiB.  Always the same page, so each
         pair is read back at once.

The second thread starts 0 to 2 ms after the first (50 us steps), to sweep
the window.  The device is opened with O_DIRECT.  "prep-fill" and
"prep-zero" write 0x11 over the second write's range of every cluster
beforehand (allocating it).  Then every pair is checked; the pairs whose
bytes differ are reported, and the exit status is 1 if any.
"""
import fcntl
import mmap
import os
import struct
import sys
import threading
import time

BLKZEROOUT = 0x127F
CLUSTER = 65536
SHAPES = {
    # mode: (first write's offset and length, second write's)
    "fill": ((4096, 512), (6144, 2048)),
    "zero": ((0, 512), (2048, 2048)),
    "first": ((0, 512), (2048, 2048)),
}


def buf(byte, size=4096):
    m = mmap.mmap(-1, size)
    m.write(bytes([byte]) * size)
    return m


def main():
    dev, pairs, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    prep = mode.startswith("prep-")
    (a_off, a_len), (b_off, b_len) = SHAPES[mode[5:] if prep else mode]
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    if prep:
        old = memoryview(buf(0x11))[:b_len]
        for i in range(pairs):
            os.pwritev(fd, [old], i * CLUSTER + b_off)
        os.fsync(fd)
        return 0

    same_page = mode == "first"
    first = memoryview(buf(0xaa))[:a_len]
    seconds = [memoryview(buf(v))[:b_len] for v in range(256)]
    want_a = (b"\0" if mode == "zero" else b"\xaa") * a_len
    page = mmap.mmap(-1, 8192)
    barrier = threading.Barrier(2)
    bad = []

    def base(i):
        return 0 if same_page else i * CLUSTER

    def value(i):
        return 1 + i % 255 if same_page else 0x22

    def check(i):
        os.preadv(fd, [page], base(i))
        if page[a_off:a_off + a_len] != want_a or \
           page[b_off:b_off + b_len] != bytes([value(i)]) * b_len:
            bad.append(i)

    def first_writer():
        for i in range(1, pairs):
            barrier.wait()
            if mode == "zero":
                fcntl.ioctl(fd, BLKZEROOUT,
                            struct.pack("QQ", base(i) + a_off, a_len))
            else:
                os.pwritev(fd, [first], base(i) + a_off)
            if same_page:
                barrier.wait()

    def second_writer():
        for i in range(1, pairs):
            barrier.wait()
            until = time.perf_counter() + (i % 40) * 50e-6
            while time.perf_counter() < until:
                pass
            os.pwritev(fd, [seconds[value(i)]], base(i) + b_off)
            if same_page:
                barrier.wait()
                check(i)

    threads = [threading.Thread(target=first_writer),
               threading.Thread(target=second_writer)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - start
    os.fsync(fd)
    if not same_page:
        for i in range(1, pairs):
            check(i)
    print("# %s: %d write pairs in %.1f s, %d lost a write%s" %
          (mode, pairs - 1, took, len(bad),
           " (pairs %s)" % bad[:8] if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
