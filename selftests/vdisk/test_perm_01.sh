#!/bin/bash
# Unprivileged callers may list but not attach, detach or change devices.
. ./lib.sh

img=$VD_DIR/a.img
truncate -s 16M "$img"
chmod 0666 "$img"
chmod 0755 "$VD_DIR"
attach "$img"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all "$@"; }
expect_fail "CAP_SYS_ADMIN" nobody "$VDISKCTL" attach "$img"
expect_fail "CAP_SYS_ADMIN" nobody "$VDISKCTL" detach "$DEV"
expect_fail "CAP_SYS_ADMIN" nobody "$VDISKCTL" resize "$DEV"
out=$(nobody "$VDISKCTL" list) || fail "unprivileged list failed"
grep -q "^$DEV " <<<"$out" || fail "unprivileged list does not show $DEV"
# Root without CAP_SYS_ADMIN is refused too.
expect_fail "CAP_SYS_ADMIN" setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin "$VDISKCTL" detach "$DEV"
[ -b "$DEV" ] || fail "device gone after refused detaches"
detach "$DEV"
exit 0
