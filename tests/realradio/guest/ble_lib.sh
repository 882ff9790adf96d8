# Sourced by the BLE group script: two virtual LE controllers (btvirt: hci0 and hci1 on one
# emulated air), D-Bus and bluetoothd serving both. Logs go to $L; every wait is bounded.
# The traps (docs/ble.md): btvirt's controllers sometimes fail their reset under TCG unless the
# kernel's AF_ALG ciphers are bound first; EATT breaks btvirt's ATT ("[GATT] Channels = 1"); one
# bluetoothd serving both ends must not start a reverse GATT client ("ReverseServiceDiscovery").
L=/run/blelog; mkdir -p $L
BB=/bin/busybox
PY=$rr_root/.venv/bin/python
export PYTHONPATH=$rr_root/src  # this tree's modules, also when .venv is another checkout's
G=$rr_root/tests/realradio/guest
ts() { $BB cut -d' ' -f1 /proc/uptime; }
log() { echo "[$(ts)] $*"; }
uptime_s() { read up _ < /proc/uptime; echo ${up%.*}; }

controllers_ready() {  # both controllers finished their LE init (debugfs "identity" exists)
    n=0
    for d in /sys/kernel/debug/bluetooth/hci*; do [ -e "$d/identity" ] && n=$((n + 1)); done
    [ "$n" -ge 2 ]
}

bt_start() {
    modprobe -a bluetooth hci_vhci af_alg algif_hash algif_skcipher cmac ecb || return 1
    mkdir -p /run/dbus
    dbus-daemon --system --fork --nopidfile || return 1
    mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
    /usr/bin/python3 $G/ble_alg_warm.py > $L/alg.log 2>&1
    for try in 1 2 3 4; do
        btvirt -L -l2 > $L/btvirt.$try.log 2>&1 &
        BTVIRT_PID=$!
        end=$(( $(uptime_s) + 8 ))
        while ! controllers_ready && [ $(uptime_s) -lt $end ]; do sleep 0.1; done
        controllers_ready && break
        log "btvirt try $try: controllers not ready"
        kill $BTVIRT_PID; wait $BTVIRT_PID 2>/dev/null
        for i in $(seq 1 50); do [ -z "$(ls /sys/class/bluetooth 2>/dev/null)" ] && break; sleep 0.1; done
    done
    controllers_ready || return 1
    mkdir -p /var/lib/bluetooth && chmod 700 /var/lib/bluetooth
    printf '[General]\nReverseServiceDiscovery = false\n[GATT]\nChannels = 1\n' > /run/bt-main.conf
    # SCHED_FIFO: bluetoothd runs as soon as it is woken. Late (the WiFi stack beside it on one
    # vCPU), it handled the outgoing ATT channel before the kernel's Device Connected event and
    # then never signalled Connected: bleak failed nearly every connection (docs/ble.md)
    chrt -f 10 /usr/libexec/bluetooth/bluetoothd -n -d -f /run/bt-main.conf > $L/bluetoothd.log 2>&1 &
    end=$(( $(uptime_s) + 30 ))
    while [ $(uptime_s) -lt $end ]; do
        c=$(busctl --system tree org.bluez 2>/dev/null | grep -cE '/org/bluez/hci[0-9]+$')
        [ "$c" -ge 2 ] && break
        sleep 0.2
    done
    for a in hci0 hci1; do
        busctl --system set-property org.bluez /org/bluez/$a org.bluez.Adapter1 Powered b true || return 1
    done
    log "bluetooth ready: hci0 and hci1 powered"
}

save_logs() {
    mkdir -p /out/logs
    dmesg > $L/dmesg.txt 2>/dev/null
    cp -a $L/. /out/logs/ 2>/dev/null
}
