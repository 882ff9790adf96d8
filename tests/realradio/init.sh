# PID 1 of the real-radio guest, after the initramfs switch_root'ed into the host's root
# (9p, read-only, under a tmpfs overlay). Kernel command line: rr_kdir (the guest kernel's
# extracted package), rr_script (the scenario group to run), rr_* (passed to it). Runs the
# script with its output in /out/script.log, writes its exit status to /out/rc, powers off.
# Static busybox for everything here: each exec of a dynamic binary over 9p is slow in TCG.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
BB=/bin/busybox
$BB mount -t proc proc /proc
$BB mount -t sysfs sysfs /sys
$BB mkdir -p /dev/pts /dev/shm
$BB mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
$BB mount -t tmpfs tmpfs /dev/shm
# The checkout (its scripts, its .venv, build/) may live under a folder that gets a fresh tmpfs
# below (a CI clone in /tmp): keep it reachable at its own path across those mounts.
$BB mkdir -p /mnt/rr-root && $BB mount -o bind "$rr_root" /mnt/rr-root
$BB mount -t tmpfs -o mode=755 tmpfs /run
$BB mount -t tmpfs -o mode=1777 tmpfs /tmp
$BB mount -t tmpfs tmpfs /var/log
$BB mount -t tmpfs tmpfs /var/tmp
$BB mkdir -p "$rr_root" && $BB mount -o bind /mnt/rr-root "$rr_root"
$BB mkdir -p /run/lock /run/user /out
$BB mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out || { echo "init: no /out"; $BB poweroff -f; }
# The kernel's own request_module() (ccm/ctr when a CCMP key is installed, nf_* for NM's shared
# mode) runs plain /sbin/modprobe: the modules must be at /lib/modules/$(uname -r).
KV=$($BB uname -r)
$BB mkdir -p /lib/modules/$KV && $BB mount -o bind "$rr_kdir/lib/modules/$KV" /lib/modules/$KV
$BB mount --make-rshared /
$BB hostname realradio
$BB ip link set lo up
echo "init: up at $($BB cut -d' ' -f1 /proc/uptime)s, kernel $KV"
rc=255
if [ -f "$rr_script" ]; then
    $BB timeout "${rr_timeout:-500}" /bin/sh "$rr_script" > /out/script.log 2>&1; rc=$?
fi
echo "init: $rr_script exited $rc at $($BB cut -d' ' -f1 /proc/uptime)s"
echo "$rc" > /out/rc
$BB sync
$BB umount /out
$BB poweroff -f
