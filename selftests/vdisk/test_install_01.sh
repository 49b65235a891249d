#!/bin/bash
# `make install DESTDIR=` leaves exactly the expected tree (module, vdiskctl,
# udev rules, systemd unit with the installed path, generator link, man
# pages, bash completion) and runs no depmod; `make uninstall` removes all of
# it; PREFIX moves what belongs under it.  The installed pieces work: the
# tool runs, the man pages render, the completion completes.
. ./lib.sh

kver=$(uname -r)
ko=$VD_TOP/build/$kver/kmod/vdisk.ko
mk() { run make -s --no-print-directory -C "$VD_TOP" "$@" KVER="$kver" MODULE_KO="$ko"; }
tree() { (cd "$1" && find . ! -type d | sed 's|^\./||' | sort); }

d=$VD_DIR/root
mk install DESTDIR="$d" >/dev/null
assert_eq "$(tree "$d")" "lib/modules/$kver/updates/vdisk.ko
lib/systemd/system-generators/vdisk-generator
lib/systemd/system/vdisk@.service
lib/udev/rules.d/60-vdisk.rules
usr/local/sbin/vdiskctl
usr/local/share/bash-completion/completions/vdiskctl
usr/local/share/doc/vdisk/vdisktab.example
usr/local/share/man/man5/vdisktab.5
usr/local/share/man/man8/vdiskctl.8" "installed tree"
cmp "$ko" "$d/lib/modules/$kver/updates/vdisk.ko" || fail "module differs"
[ -x "$d/usr/local/sbin/vdiskctl" ] || fail "vdiskctl not executable"
assert_eq "$(stat -c %a "$d/lib/systemd/system/vdisk@.service")" 644 "unit mode"
assert_eq "$(readlink "$d/lib/systemd/system-generators/vdisk-generator")" /usr/local/sbin/vdiskctl "generator link"
grep -qx 'ExecStart=/usr/local/sbin/vdiskctl attach-all %I' "$d/lib/systemd/system/vdisk@.service" ||
	fail "ExecStart path: $(grep Exec "$d/lib/systemd/system/vdisk@.service")"
grep -q '@SBINDIR@' "$d/lib/systemd/system/vdisk@.service" && fail "unsubstituted @SBINDIR@"
"$d/usr/local/sbin/vdiskctl" --version | grep -qx "vdiskctl $(cat "$VD_TOP/VERSION")" || fail "installed vdiskctl --version"

# The installed generator is vdiskctl under another name.
ln -s "$d/usr/local/sbin/vdiskctl" "$VD_DIR/vdisk-generator"
echo "gen $VD_DIR/x.img" >"$VD_DIR/tab"
mkdir "$VD_DIR/gen"
VDISKTAB=$VD_DIR/tab SYSTEMD_FSTAB=/dev/null "$VD_DIR/vdisk-generator" "$VD_DIR/gen" "$VD_DIR/gen" "$VD_DIR/gen" ||
	fail "generator failed"
[ -L "$VD_DIR/gen/local-fs.target.wants/vdisk@gen.service" ] || fail "generator made no unit"

# The man pages render cleanly.
for m in man8/vdiskctl.8 man5/vdisktab.5; do
	MANWIDTH=80 man --warnings -l "$d/usr/local/share/man/$m" >"$VD_DIR/man.txt" 2>"$VD_DIR/man.err"
	[ -s "$VD_DIR/man.err" ] && fail "man $m: $(cat "$VD_DIR/man.err")"
	grep -q "attach-all" "$VD_DIR/man.txt" || fail "man $m lacks attach-all"
done

# The completion: commands, options per command, values, devices by name.
attach --name compl "$(truncate -s 8M "$VD_DIR/c.img"; echo "$VD_DIR/c.img")"
complete_words() {	# WORDS...: what completing the last word offers
	bash -c '
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_vdiskctl; printf "%s\n" "${COMPREPLY[@]}"' _ \
		"$d/usr/local/share/bash-completion/completions/vdiskctl" "$@" | sort | tr '\n' ' '
}
PATH=$d/usr/local/sbin:$PATH
assert_eq "$(complete_words vdiskctl att)" "attach attach-all " "commands"
assert_eq "$(complete_words vdiskctl attach --ca)" "--cache --cache-size " "attach options"
assert_eq "$(complete_words vdiskctl detach-all --)" "--help --lazy --tab " "detach-all options"
assert_eq "$(complete_words vdiskctl set "$DEV" --cache w)" "writeback writethrough " "cache values"
assert_eq "$(complete_words vdiskctl attach --format q)" "qcow2 " "format values"
assert_eq "$(complete_words vdiskctl detach co)" "compl " "device names"
complete_words vdiskctl list /dev/vd | grep -q "$DEV " || fail "device nodes not offered"
assert_eq "$(complete_words vdiskctl attach-all --tab "$VD_DIR/tab" g)" "gen " "tab names"
detach "$DEV"

# uninstall removes exactly what install put there.
mk uninstall DESTDIR="$d" >/dev/null
assert_eq "$(tree "$d")" "" "left after uninstall"

# PREFIX=/usr: the tool and its pages move, the unit follows.
d2=$VD_DIR/root2
mk install-tools DESTDIR="$d2" PREFIX=/usr >/dev/null
grep -qx 'ExecStart=/usr/sbin/vdiskctl attach-all %I' "$d2/lib/systemd/system/vdisk@.service" || fail "PREFIX=/usr ExecStart"
for f in usr/sbin/vdiskctl usr/share/man/man8/vdiskctl.8 usr/share/bash-completion/completions/vdiskctl; do
	[ -e "$d2/$f" ] || fail "PREFIX=/usr: no $f"
done
mk uninstall-tools DESTDIR="$d2" PREFIX=/usr >/dev/null
assert_eq "$(tree "$d2")" "" "left after uninstall with PREFIX=/usr"
exit 0
