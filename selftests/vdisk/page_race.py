#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Race two writes into one host page of a qcow2 device (test_qcow2_12).

Usage: page_race.py DEV CLUSTERS {fill|zero}

In every 64 KiB cluster of DEV (from the second on), two threads write at
once, released together by a barrier:

  fill: 512 bytes of 0xaa at 4 KiB, inside an unallocated 2 KiB subcluster
        of an extended-L2 image, which the core fills around them from the
        backing file (a buffered write of the page); and 2 KiB of 0x22 at
        6 KiB, the next subcluster, allocated beforehand: an in-place
        direct write to the same host page.
  zero: BLKZEROOUT of 512 bytes at 0, which the core writes as zero data
        in place; and 2 KiB of 0x22 at 2 KiB, in place.

The second thread starts 0 to 2 ms after the first (50 us steps), to sweep
the window.  The device is opened with O_DIRECT; the data written before
("prep" below) is 0x11 over the second write's range.  Then every cluster
is read back and the clusters whose bytes differ are reported; exit 1 if
any.  "prep-fill" and "prep-zero" write the 0x11 (allocating each cluster).
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
}


def buf(byte):
    m = mmap.mmap(-1, 4096)
    m.write(bytes([byte]) * 4096)
    return m


def main():
    dev, ncl, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    prep = mode.startswith("prep-")
    (a_off, a_len), (b_off, b_len) = SHAPES[mode[5:] if prep else mode]
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    if prep:
        old = memoryview(buf(0x11))[:b_len]
        for i in range(ncl):
            os.pwritev(fd, [old], i * CLUSTER + b_off)
        os.fsync(fd)
        return 0

    new = memoryview(buf(0x22))[:b_len]
    first = memoryview(buf(0xaa))[:a_len]
    barrier = threading.Barrier(2)

    def first_writer():
        for i in range(1, ncl):
            barrier.wait()
            if mode == "zero":
                fcntl.ioctl(fd, BLKZEROOUT,
                            struct.pack("QQ", i * CLUSTER + a_off, a_len))
            else:
                os.pwritev(fd, [first], i * CLUSTER + a_off)

    def second_writer():
        for i in range(1, ncl):
            barrier.wait()
            until = time.perf_counter() + (i % 40) * 50e-6
            while time.perf_counter() < until:
                pass
            os.pwritev(fd, [new], i * CLUSTER + b_off)

    threads = [threading.Thread(target=first_writer),
               threading.Thread(target=second_writer)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - start
    os.fsync(fd)

    want_a = (b"\0" if mode == "zero" else b"\xaa") * a_len
    want_b = b"\x22" * b_len
    page = mmap.mmap(-1, 8192)
    bad = []
    for i in range(1, ncl):
        os.preadv(fd, [page], i * CLUSTER)
        if page[a_off:a_off + a_len] != want_a or \
           page[b_off:b_off + b_len] != want_b:
            bad.append(i)
    print("# %s: %d write pairs in %.1f s, %d lost a write%s" %
          (mode, ncl - 1, took, len(bad),
           " (clusters %s)" % bad[:8] if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
