#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Differential fuzzing against the judge: mutate seed images (bytes flipped
# in the header, the first metadata clusters or anywhere, never the magic)
# and read each with q2cat and with `qemu-img convert -O raw`.  Whenever
# both succeed the contents must be equal.  Where only one fails, that is
# reported as a difference in strictness, not an error: the core refuses
# more than QEMU by design (metadata or data past EOF, metadata overlaps).
#
#   diff-fuzz.py SEED_DIR [RUNS [RANDOM_SEED]]
# Mismatching images are kept in ./diff-fuzz-out/.
import hashlib
import os
import random
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
seeds = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
files = [f for f in sorted(os.listdir(seeds))
         if f.startswith('seed-') and 'overlay' not in f]
if not files:
    sys.exit('no seed-* images in ' + seeds)
stats = dict(same=0, mismatch=0, only_q2_refused=0, only_qemu_refused=0,
             both_refused=0)
os.makedirs('diff-fuzz-out', exist_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    img = os.path.join(tmp, 'm.qcow2')
    ref = os.path.join(tmp, 'ref.raw')
    for i in range(runs):
        name = rng.choice(files)
        b = bytearray(open(os.path.join(seeds, name), 'rb').read())
        for _ in range(rng.randrange(1, 4)):
            area = rng.choice((512, 6 * 65536, len(b)))
            pos = rng.randrange(4, max(5, min(len(b), area)))
            if rng.randrange(2):
                b[pos] ^= 1 << rng.randrange(8)
            else:
                b[pos] = rng.randrange(256)
        open(img, 'wb').write(b)
        q = subprocess.run([os.path.join(here, 'q2cat'), img],
                           capture_output=True)
        e = subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                            img, ref], capture_output=True)
        if q.returncode == 0 and e.returncode == 0:
            same = (hashlib.sha256(open(ref, 'rb').read()).digest() ==
                    hashlib.sha256(q.stdout).digest())
            stats['same' if same else 'mismatch'] += 1
            if not same:
                out = 'diff-fuzz-out/mismatch-%d-%s' % (i, name)
                open(out, 'wb').write(b)
                print('MISMATCH', out)
        elif e.returncode == 0:
            stats['only_q2_refused'] += 1
        elif q.returncode == 0:
            stats['only_qemu_refused'] += 1
            print('only qemu refused %s (%d): %s' % (
                name, i, e.stderr.decode(errors='replace').strip()[:120]))
        else:
            stats['both_refused'] += 1
print(' '.join('%s=%d' % kv for kv in stats.items()))
sys.exit(1 if stats['mismatch'] else 0)
