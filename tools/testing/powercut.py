#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Power-cut workload and judge for qcow2 devices (tools/testing/run-powercut).

  powercut.py write DEV SEED      in the guest: write, zero and discard
                                  forever, fsync every few operations and
                                  log each acknowledged flush to the console
  powercut.py judge RAW SEED LOG  on the host: RAW (the image converted by
                                  qemu-img) must hold every operation
                                  before the last acknowledged flush in LOG

Both sides draw the same operations from SEED, so the log needs only the
number of operations a flush covered.  Ranges touched by operations after
that flush may hold old or new data and are not judged.
"""
import fcntl
import mmap
import os
import random
import struct
import sys
import time

SIZE = 64 << 20          # device size
BASE = 32 << 20          # bytes of 0x5a written by qemu-io before attach
CLUSTER = 64 << 10
FLUSH_EVERY = 8          # operations between fsyncs
BLKDISCARD = 0x1277
BLKZEROOUT = 0x127f
TAG = "VDISK-POWERCUT"


def ops(seed):
    """Yield (kind, offset, length, fill_seed) forever."""
    r = random.Random(seed)
    n = 0
    while True:
        n += 1
        k = r.random()
        if k < 0.08:
            # whole clusters only: a discard of a partial cluster is advisory
            off = r.randrange(0, SIZE // CLUSTER - 4) * CLUSTER
            yield ("discard", off, r.randint(1, 4) * CLUSTER, 0)
        elif k < 0.16:
            off = r.randrange(0, SIZE // 4096 - 64) * 4096
            yield ("zero", off, r.randint(1, 64) * 4096, 0)
        else:
            ln = r.choice([4096, 8192, 65536, 131072, 262144, 1 << 20])
            off = r.randrange(0, (SIZE - ln) // 4096) * 4096
            yield ("write", off, ln, r.getrandbits(32))


def fill(fill_seed, length):
    return random.Random(fill_seed).randbytes(length)


def log(msg):
    # /dev/kmsg reaches the serial console at once, unlike stdout.
    with open("/dev/kmsg", "w") as k:
        k.write(f"{TAG} {msg}\n")


def write(dev, seed):
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, 1 << 20)
    done = 0
    for kind, off, ln, fs in ops(seed):
        if kind == "write":
            buf.seek(0)
            buf.write(fill(fs, ln))
            os.pwritev(fd, [memoryview(buf)[:ln]], off)
        elif kind == "zero":
            fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", off, ln))
        else:
            fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", off, ln))
        done += 1
        if done % FLUSH_EVERY == 0:
            os.fsync(fd)
            log(f"flushed {done}")


def judge(raw, seed, logfile):
    acked = 0
    with open(logfile, errors="replace") as f:
        for line in f:
            if TAG + " flushed " in line:
                acked = max(acked, int(line.split(TAG + " flushed ")[1].split()[0]))
    if acked < 2 * FLUSH_EVERY:
        print(f"# only {acked} operations acknowledged before the cut")
        return 1
    want = bytearray(b"\x5a" * BASE + bytes(SIZE - BASE))
    fuzzy = bytearray(SIZE // 4096)      # 1: 4 KiB block not judged
    gen = ops(seed)
    for i in range(acked):
        kind, off, ln, fs = next(gen)
        want[off:off + ln] = fill(fs, ln) if kind == "write" else bytes(ln)
    # Whatever followed may have landed, fully, partly or not at all.
    for i in range(4 * FLUSH_EVERY + 64):
        kind, off, ln, fs = next(gen)
        for b in range(off // 4096, (off + ln) // 4096):
            fuzzy[b] = 1
    with open(raw, "rb") as f:
        got = f.read()
    if len(got) < SIZE:
        print(f"# image is {len(got)} bytes, expected {SIZE}")
        return 1
    bad = judged = 0
    for b in range(SIZE // 4096):
        if fuzzy[b]:
            continue
        judged += 1
        if got[b * 4096:(b + 1) * 4096] != want[b * 4096:(b + 1) * 4096]:
            if bad < 5:
                print(f"# block {b} (offset {b * 4096}) differs")
            bad += 1
    print(f"# {acked} operations acknowledged; {judged} of {SIZE // 4096} "
          f"blocks judged, {bad} wrong")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "judge":
        sys.exit(judge(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    else:
        sys.exit(__doc__)
