#!/bin/bash
# Attach, list (text and JSON), detach: the round trip every user does first.
. ./lib.sh

truncate -s 64M "$VD_DIR/a.img"
attach "$VD_DIR/a.img"
log "attached $DEV"
assert_blk_size "$DEV" $((64 << 20))

out=$("$VDISKCTL" list)
head=$(head -n1 <<<"$out")
for col in NAME SIZE FORMAT OFFSET SIZELIMIT RO PARTSCAN AUTOCLEAR CACHE SECTOR BACKING-FILE; do
	grep -qw -- "$col" <<<"$head" || fail "list header lacks $col: $head"
done
grep -q "^$DEV .*raw.*$VD_DIR/a.img\$" <<<"$out" || fail "list lacks $DEV: $out"

# `vdiskctl` alone lists too.
[ "$("$VDISKCTL")" = "$out" ] || fail "vdiskctl without arguments differs from list"

json=$("$VDISKCTL" list --json)
JSON=$json python3 - "$DEV" "$VD_DIR/a.img" <<'PY' || fail "bad JSON: $json"
import json, os, sys
d = json.loads(os.environ["JSON"])["vdisks"]
dev, path = sys.argv[1], sys.argv[2]
m = [x for x in d if x["name"] == dev]
assert len(m) == 1, d
x = m[0]
assert x["size"] == 64 << 20, x
assert x["format"] == "raw" and x["offset"] == 0 and x["sizelimit"] == 0, x
assert x["ro"] is False and x["partscan"] is True and x["autoclear"] is False, x
assert x["cache"] in ("none", "writeback", "writethrough"), x
assert x["sector"] == 512 and x["backing-file"] == path, x
PY

detach "$DEV"
[ -b "$DEV" ] && fail "$DEV still exists after detach"
out=$("$VDISKCTL" list)
[ -z "$out" ] || fail "list not empty after detach: $out"
json=$("$VDISKCTL" list --json)
python3 -c 'import json,sys; assert json.load(sys.stdin) == {"vdisks": []}' <<<"$json" || fail "empty JSON wrong: $json"
exit 0
