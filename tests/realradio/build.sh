#!/bin/sh
# Builds what the real-radio tier boots, once, into $1 (build/realradio): the Debian packages
# the host lacks, the guest kernel (linux-image-amd64's kernel package, extracted with dpkg -x,
# modules indexed with depmod) and a busybox-static initramfs that mounts the host root over 9p
# read-only with a tmpfs overlay and runs tests/realradio/init.sh as PID 1. Idempotent; prints
# the kernel version last. Any failure exits non-zero with what went wrong.
set -eu
mkdir -p "$1"; OUT=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
DEBS="qemu-system-x86 busybox-static kmod cpio network-manager wpasupplicant hostapd iw udev
      wireless-regdb dnsmasq-base iproute2 bluez bluez-test-tools"
mkdir -p "$OUT/kpkg"
missing=$(for p in $DEBS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null \
          | grep -q 'install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
    echo "realradio: installing Debian packages:" $missing >&2
    # policy-rc.d 101: installing network-manager must not start it on the host
    [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d;
                                      chmod +x /usr/sbin/policy-rc.d; ours=1; }
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2 \
        || { [ -n "${ours:-}" ] && rm -f /usr/sbin/policy-rc.d; echo "realradio: apt-get failed" >&2; exit 1; }
    [ -n "${ours:-}" ] && rm -f /usr/sbin/policy-rc.d
fi
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { echo "realradio: apt-cache knows no linux-image-amd64" >&2; exit 1; }
KV=${KPKG#linux-image-}
if [ ! -f "$OUT/kroot/boot/vmlinuz-$KV" ]; then
    rm -f "$OUT"/kpkg/*.deb
    (cd "$OUT/kpkg" && apt-get download "$KPKG" >&2)
    rm -rf "$OUT/kroot.tmp" && dpkg -x "$OUT"/kpkg/"${KPKG}"_*.deb "$OUT/kroot.tmp"
    depmod -b "$OUT/kroot.tmp" "$KV"
    rm -rf "$OUT/kroot" && mv "$OUT/kroot.tmp" "$OUT/kroot"
fi
if [ ! -f "$OUT/initrd-$KV.gz" ] || [ "$HERE/build.sh" -nt "$OUT/initrd-$KV.gz" ]; then
    M=$OUT/kroot/lib/modules/$KV
    W=$OUT/initrd.d
    rm -rf "$W"; mkdir -p "$W/bin" "$W/mods" "$W/proc" "$W/sys" "$W/dev" "$W/newroot" "$W/lower" "$W/rw"
    cp /bin/busybox "$W/bin/busybox"
    for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
             9pnet 9pnet_virtio netfs fscache 9p overlay; do
        f=$(find "$M/kernel" -name "$m.ko*" | head -1)
        [ -n "$f" ] || continue  # built in
        case $f in *.xz) xz -dc "$f" > "$W/mods/$m.ko";; *) cp "$f" "$W/mods/$m.ko";; esac
        echo "$m" >> "$W/mods/order"
    done
    cat > "$W/init" <<'EOI'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /mods/order); do insmod /mods/$m.ko || echo "initrd: insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower \
    || { echo "initrd: 9p mount failed"; poweroff -f; }
mount -t tmpfs -o size=256m,mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || { echo "initrd: overlay failed"; poweroff -f; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /bin/busybox sh "$rr_init"
EOI
    chmod +x "$W/init"
    (cd "$W" && find . | cpio -o -H newc --quiet | gzip -1 > "$OUT/initrd-$KV.gz.tmp")
    mv "$OUT/initrd-$KV.gz.tmp" "$OUT/initrd-$KV.gz"
fi
echo "$KV"
