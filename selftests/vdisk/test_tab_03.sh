#!/bin/bash
# vdisk-generator: what it writes for systemd from a vdisktab and an fstab.
# An image on the root file system is ordered before local-fs-pre.target;
# one on another fstab mount after that mount and before local-fs.target,
# with the other fstab mounts that may sit on a vdisk ordered after it;
# one on a network mount before remote-fs.target; noauto lines get no
# Wants=; names and mount points are escaped as systemd-escape does.
. ./lib.sh

cd "$VD_DIR"
ln -s "$VDISKCTL" vdisk-generator
# The longest names a unit takes: 239 bytes once each '-' is "\x2d".
dashes=$(printf -- '-%.0s' {1..59})
long=abc$dashes
cat >tab <<TAB
early    /var/lib/images/e.img   ro
web-01   /srv/images/w.qcow2     cache=writeback
net      /nfs/vm/n.img           noauto
bad      relative.img
sp       /var/lib/my\\040images/s%.img
$long    /var/lib/images/l.img   noauto
abcd$dashes /var/lib/images/m.img
TAB
cat >fstab <<'FSTAB'
/dev/sda1        /              ext4  defaults 0 1
UUID=aaa         /srv           ext4  defaults 0 2
UUID=bbb         /srv/images/   ext4  defaults 0 2
server:/export   /nfs           nfs   defaults 0 0
UUID=ccc         /mnt/data      ext4  defaults 0 2
LABEL=ddd        /mnt/net       ext4  _netdev  0 0
/dev/sdb1        /mnt/plain     ext4  defaults 0 2
PARTUUID=fff     /mnt/my-data   xfs   defaults 0 2
UUID=eee         none           swap  sw       0 0
FSTAB
gen() { VDISKTAB=$VD_DIR/tab SYSTEMD_FSTAB=$VD_DIR/fstab ./vdisk-generator "$1" "$1" "$1"; }
mkdir out
gen out 2>err && fail "generator passed a bad line"
grep -q "^vdiskctl: vdisk-generator $VD_DIR/tab:4: IMAGE must be an absolute path" err || fail "bad line: $(cat err)"
grep -q "^vdiskctl: vdisk-generator $VD_DIR/tab:7: name 'abcd-*' is too long for a systemd unit" err || fail "long name: $(cat err)"
assert_eq "$(grep -c . err)" 2 "generator messages"

web=$(systemd-escape web-01)
data=$(systemd-escape --path /mnt/my-data)
assert_eq "$web" 'web\x2d01' "systemd-escape"
expect=". local-fs.target.wants local-fs.target.wants/vdisk@early.service
local-fs.target.wants/vdisk@sp.service local-fs.target.wants/vdisk@$web.service
mnt-data.mount.d mnt-data.mount.d/50-vdisk.conf mnt-net.mount.d
mnt-net.mount.d/50-vdisk.conf $data.mount.d $data.mount.d/50-vdisk.conf
vdisk@early.service.d vdisk@early.service.d/50-vdisktab.conf
vdisk@net.service.d vdisk@net.service.d/50-vdisktab.conf vdisk@sp.service.d
vdisk@sp.service.d/50-vdisktab.conf vdisk@$web.service.d
vdisk@$web.service.d/50-vdisktab.conf vdisk@$(systemd-escape $long).service.d
vdisk@$(systemd-escape $long).service.d/50-vdisktab.conf"
assert_eq "$(cd out && find . | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')" \
	"$(printf '%s\n' $expect | LC_ALL=C sort | tr '\n' ' ')" "generated files"
assert_eq "$(readlink out/local-fs.target.wants/vdisk@early.service)" /lib/systemd/system/vdisk@.service "wants link"

body() { grep -v '^#' "out/$1"; }
assert_eq "$(body vdisk@early.service.d/50-vdisktab.conf)" "[Unit]
SourcePath=$VD_DIR/tab
Description=vdisk device early (/var/lib/images/e.img)
RequiresMountsFor=\"/var/lib/images/e.img\"
Wants=local-fs-pre.target
Before=local-fs-pre.target local-fs.target

[Service]
Environment=\"VDISKTAB=$VD_DIR/tab\"" "early unit"
assert_eq "$(body "vdisk@$web.service.d/50-vdisktab.conf" | sed -n '4,5p')" 'RequiresMountsFor="/srv/images/w.qcow2"
Before=local-fs.target' "local unit"
assert_eq "$(body vdisk@net.service.d/50-vdisktab.conf | sed -n '5,7p')" 'Wants=network-online.target
After=network-online.target remote-fs-pre.target
Before=remote-fs.target' "remote unit"
# %, spaces and quotes are escaped for the unit file.
assert_eq "$(body vdisk@sp.service.d/50-vdisktab.conf | sed -n '3,4p')" 'Description=vdisk device sp (/var/lib/my images/s%%.img)
RequiresMountsFor="/var/lib/my images/s%%.img"' "escaped path"
# Mounts that could be on a vdisk follow the non-early devices of their kind;
# the mounts holding an image, root, plain disks and swap do not.
assert_eq "$(body mnt-data.mount.d/50-vdisk.conf)" "[Unit]
After=vdisk@$web.service" "mnt-data drop-in"
assert_eq "$(body "$data.mount.d/50-vdisk.conf")" "[Unit]
After=vdisk@$web.service" "my-data drop-in"
assert_eq "$(body mnt-net.mount.d/50-vdisk.conf)" "[Unit]
After=vdisk@net.service" "mnt-net drop-in"

# What systemd makes of it: the template plus the drop-ins load cleanly.
if command -v systemd-analyze >/dev/null; then
	mkdir units
	sed "s|@SBINDIR@|$(dirname "$VDISKCTL")|" "$VD_TOP/packaging/systemd/vdisk@.service.in" >units/vdisk@.service
	cp -r out/vdisk@early.service.d units/
	out=$(SYSTEMD_UNIT_PATH=$VD_DIR/units: systemd-analyze verify --man=no vdisk@early.service 2>&1 |
		grep -v -e 'Failed to .*bus' -e 'is not a directory' -e '^$')
	grep -qi "vdisk@" <<<"$out" && fail "systemd-analyze verify: $out"
fi

# A path with "//" is on its mount all the same: systemd simplifies
# RequiresMountsFor=, and an early unit would then wait for that mount.
printf 'dbl /mnt//data/d.img\ndot /mnt/./data/./e.img\n' >tab2
mkdir out3
VDISKTAB=$VD_DIR/tab2 SYSTEMD_FSTAB=$VD_DIR/fstab ./vdisk-generator out3 out3 out3 ||
	fail "generator failed on an image path with //"
assert_eq "$(grep '^Before=' out3/vdisk@dbl.service.d/50-vdisktab.conf)" "Before=local-fs.target" \
	"order of a unit whose image path has //"
assert_eq "$(grep '^Before=' out3/vdisk@dot.service.d/50-vdisktab.conf)" "Before=local-fs.target" \
	"order of a unit whose image path has /./"

# No table: nothing to do, silently.
mkdir out2
VDISKTAB=$VD_DIR/none SYSTEMD_FSTAB=$VD_DIR/fstab ./vdisk-generator out2 out2 out2 || fail "generator without a table failed"
assert_eq "$(ls -A out2)" "" "output without a table"
expect_fail "Usage" ./vdisk-generator
exit 0
