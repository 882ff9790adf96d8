# Sourced by the guest's group scripts: the WiFi stack, and access points in network namespaces.
# Logs go to $L (tmpfs); save_logs copies them to /out. Every wait is bounded.
L=/run/rrlog; mkdir -p $L
BB=/bin/busybox
PY=$rr_root/.venv/bin/python
export PYTHONPATH=$rr_root/src  # this tree's modules, also when .venv is another checkout's
ts() { $BB cut -d' ' -f1 /proc/uptime; }
log() { echo "[$(ts)] $*"; }

# start_stack RADIOS AP_IFACES...: hwsim with RADIOS radios; each AP_IFACE's phy moves to its own
# netns (named after it: ns-wlan2; IFACE@NS shares NS with another AP: two routers on one uplink)
# before NetworkManager starts, so NM never sees it and traffic to it crosses the simulated air.
# Then D-Bus, udev, wpa_supplicant (D-Bus), NetworkManager.
start_stack() {
    radios=$1; shift
    modprobe mac80211_hwsim radios=$radios regtest=5 support_p2p_device=0 || return 1
    modprobe -a ccm ctr gcm
    for i in $(seq 1 50); do [ -e /sys/class/net/wlan$((radios - 1)) ] && break; sleep 0.1; done
    for spec in "$@"; do
        ifc=${spec%@*}; ns=ns-$ifc
        case $spec in *@*) ns=${spec#*@};; esac
        echo $ns > /run/ns-of-$ifc
        phy=$(cat /sys/class/net/$ifc/phy80211/name)
        [ -e /run/netns/$ns ] || { ip netns add $ns && ip -n $ns link set lo up; }
        iw phy $phy set netns name $ns || return 1
    done
    mkdir -p /run/dbus
    [ -S /run/dbus/system_bus_socket ] || dbus-daemon --system --fork --nopidfile  # one bus (BLE started it)
    /lib/systemd/systemd-udevd --daemon
    udevadm trigger --action=add --subsystem-match=net --subsystem-match=ieee80211 --subsystem-match=rfkill
    udevadm settle -t 20
    wpa_supplicant -u -s -O "DIR=/run/wpa_supplicant GROUP=netdev" -dd -t -f $L/wpa_supplicant.log &
    mkdir -p /etc/NetworkManager/conf.d
    cat > /etc/NetworkManager/conf.d/90-realradio.conf <<EOC
[main]
no-auto-default=*
[logging]
level=DEBUG
[device-realradio]
wifi.scan-rand-mac-address=no
[keyfile]
unmanaged-devices=interface-name:hwsim0;interface-name:mobile
[connection-realradio]
ipv4.dhcp-timeout=20
EOC
    nm_start
    for i in $(seq 1 120); do nmcli -t general status >/dev/null 2>&1 && break; sleep 0.5; done
    nmcli -t -f DEVICE,STATE dev | grep -q ':disconnected' || sleep 3
    log "stack up: $(nmcli -t -f DEVICE,STATE dev | tr '\n' ' ')"
}

nm_start() { NetworkManager --debug >> $L/nm.log 2>&1 & echo $! > /run/nm.pid; }
nm_stop() {
    pid=$(cat /run/nm.pid); kill $pid
    for i in $(seq 1 100); do [ -e /proc/$pid ] || return 0; sleep 0.1; done
    kill -9 $pid
}
# count PATTERN FILE: how many lines match (0 when none)
count() { grep -c "$1" "$2" 2>/dev/null || true; }
# wait_more PATTERN FILE N TIMEOUT: until more than N lines match
wait_more() {
    end=$(( $(date +%s) + $4 ))
    while [ $(date +%s) -lt $end ]; do [ "$(count "$1" "$2")" -gt "$3" ] && return 0; sleep 0.5; done
    return 1
}

# ns_of IFACE: the network namespace start_stack put an AP interface in
ns_of() { cat /run/ns-of-$1 2>/dev/null || echo ns-$1; }

# ap_start IFACE CONF_LINES...: hostapd on IFACE (in its netns) with the given config lines
# (a line given twice, e.g. channel=11, overrides: hostapd keeps the last).
ap_start() {
    ifc=$1; shift
    ap_stop $ifc; ns=$(ns_of $ifc)
    { echo "interface=$ifc"; echo "driver=nl80211"; echo "hw_mode=g"; echo "channel=6"
      echo "ctrl_interface=/run/hostapd-$ifc"; for line in "$@"; do echo "$line"; done; } > /run/hostapd-$ifc.conf
    ip netns exec $ns hostapd -B -P /run/hostapd-$ifc.pid -t -f $L/hostapd-$ifc.log -d /run/hostapd-$ifc.conf >/dev/null || return 1
    for i in $(seq 1 50); do
        ip netns exec $ns hostapd_cli -p /run/hostapd-$ifc -i $ifc status 2>/dev/null | grep -q state=ENABLED && return 0
        sleep 0.2
    done
    log "hostapd on $ifc did not come up"; return 1
}
ap_stop() {
    [ -f /run/hostapd-$1.pid ] || return 0
    pid=$(cat /run/hostapd-$1.pid); kill $pid 2>/dev/null
    for i in $(seq 1 30); do [ -e /proc/$pid ] || break; sleep 0.1; done
    rm -f /run/hostapd-$1.pid
}
# dhcp_start IFACE PREFIX: dnsmasq (DHCP, and DNS for the names in /run/hosts-IFACE) on IFACE in
# its netns, at PREFIX.1/24 (the router it hands out).
dhcp_start() {
    [ -f /run/dnsmasq-$1.pid ] && [ -e /proc/$(cat /run/dnsmasq-$1.pid) ] && return 0
    ns=$(ns_of $1)
    ip -n $ns addr add $2.1/24 dev $1 2>/dev/null
    touch /run/hosts-$1
    ip netns exec $ns dnsmasq --no-daemon --user=root --interface=$1 --bind-interfaces \
        --except-interface=lo --no-resolv --no-hosts --addn-hosts=/run/hosts-$1 \
        --dhcp-range=$2.10,$2.50,1h --dhcp-leasefile=/run/dnsmasq-$1.leases --log-dhcp \
        >> $L/dnsmasq-$1.log 2>&1 &
    echo $! > /run/dnsmasq-$1.pid
}
dhcp_stop() {
    [ -f /run/dnsmasq-$1.pid ] || return 0
    kill $(cat /run/dnsmasq-$1.pid) 2>/dev/null; rm -f /run/dnsmasq-$1.pid; sleep 0.3
}
# wait_ssid SSID IFACE TIMEOUT: rescan until NM lists SSID (nmcli does not rescan by itself).
wait_ssid() {
    end=$(( $(date +%s) + $3 ))
    while [ $(date +%s) -lt $end ]; do
        nmcli -g SSID dev wifi list ifname $2 --rescan yes 2>/dev/null | grep -qxF "$1" && return 0
        sleep 1
    done
    log "$1 not visible from $2 after $3 s"; return 1
}
save_logs() {
    dmesg > $L/dmesg.txt 2>/dev/null
    cp -a $L/. /out/logs/ 2>/dev/null || { mkdir -p /out/logs && cp -a $L/. /out/logs/; }
}
