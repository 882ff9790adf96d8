# Group "e2e": `wifiprov device --radio nm --ap-passphrase …` (wlan0) opens its WPA2 AP through
# NetworkManager; a phone radio (wlan1, the same NM) joins it with the passphrase, gets an
# address by DHCP, resolves names and is redirected to the portal; `wifiprov provision --wifi nm
# --ap-passphrase …` provisions the device, which joins the "home" network (hostapd on wlan2,
# in ns-wlan2, WPA2, DHCP and DNS by dnsmasq) and logs in to a `wifiprov cloud` running in
# ns-wlan2 at 192.168.77.1. The phone reaches the cloud's API over a veth ("mobile data",
# 10.99.0.1). Then, on the running device: the home AP restarted; failover (the device sent back
# to setup mode by `wifiprov reconfigure` and provisioned onto "Office WiFi", hostapd on wlan3,
# also in ns-wlan2, 192.168.78.0/24, routed to the cloud; Office's AP then stopped: the device
# must go back to "Home WiFi"); NetworkManager restarted; the radios removed. (The agent's open
# AP is in the failures group: phone_open.)
# Results: /out/e2e.txt (KEY=VALUE), /out/provision.jsonl, /out/provision-office.jsonl (each line
# stamped with the time the guest read it).
. $rr_root/tests/realradio/guest/lib.sh
R=/out/e2e.txt; : > $R
say() { echo "$1" >> $R; log "$1"; }
now() { date +%s.%N; }
W="$PY -m wifiprov"
G=$rr_root/tests/realradio/guest
export WIFIPROV_CONFIG_DIR=/run/phone
CLOUD=http://10.99.0.1:8080
printf '%s\n' 'correct horse' > /run/home-pw
printf '%s\n' 'office pass 1' > /run/office-pw
APPASS='device pass 1'  # the device's own AP: WPA2
# The cloud's owner, template and the phone's session (cloud_setup.py: one Python start for
# what `cloud init`, `login` and `templates create` do), while the WiFi stack starts.
$PY $G/cloud_setup.py --db /run/cloud.db --cloud $CLOUD > /run/template 2> $L/cloud-setup.log &
SETUP_PID=$!
start_stack 4 wlan2 wlan3@ns-wlan2 || exit 1
ap_start wlan2 "ssid=Home WiFi" "wpa=2" "wpa_key_mgmt=WPA-PSK" "rsn_pairwise=CCMP" "wpa_passphrase=correct horse" || exit 1
dhcp_start wlan2 192.168.77
ap_start wlan3 "ssid=Office WiFi" "channel=11" "wpa=2" "wpa_key_mgmt=WPA-PSK" "rsn_pairwise=CCMP" "wpa_passphrase=office pass 1" || exit 1
dhcp_start wlan3 192.168.78
ip link add mobile type veth peer name mobile netns ns-wlan2
ip addr add 10.99.0.2/24 dev mobile && ip link set mobile up
ip -n ns-wlan2 addr add 10.99.0.1/24 dev mobile && ip -n ns-wlan2 link set mobile up
wait $SETUP_PID
TMPL=$(cat /run/template)
[ -n "$TMPL" ] || { say "cloud_setup=failed"; save_logs; exit 1; }
say "template=$TMPL"

# warm NAME ARGS...: `wifiprov ARGS...` started now (its imports), run on `go NAME` (warm.py);
# its output lines are stamped as the guest reads them into /out/NAME.jsonl, its errors in $L.
warm() {
    name=$1; shift
    { $PY $G/warm.py /run/go.$name "$@"; echo $? > /run/rc.$name; } 2> $L/$name.err \
        | while IFS= read -r line; do echo "$(now) $line"; done > /out/$name.jsonl &
    echo $! > /run/pid.$name
}
go() { t_go=$(now); touch /run/go.$1; }
finish() {  # NAME TIMEOUT: wait (bounded) for the command to end; says how long it ran
    pid=$(cat /run/pid.$1)
    for i in $(seq 1 $(( $2 * 2 ))); do kill -0 $pid 2>/dev/null || break; sleep 0.5; done
    say "${1}_seconds=$(echo "$(now) - $t_go" | bc)"
    say "${1}_rc=$(cat /run/rc.$1 2>/dev/null)"
}
provision() {  # NAME SSID PASSWORD-FILE DEVICE-NAME, as a user would run it on a laptop
    warm $1 provision --wifi nm --interface wlan1 --cloud $CLOUD --template Lamp --ssid "$2" \
        --password-file "$3" --name "$4" --ap-passphrase "$APPASS" --json
}

# The cloud and the device start together (each takes many seconds to start under TCG); the
# provisioner's imports once the AP is open, while the phone checks the AP by itself.
ip netns exec ns-wlan2 $W cloud --db /run/cloud.db --http 0.0.0.0:8080 --gateway 0.0.0.0:8442 --public-host 192.168.77.1 > $L/cloud.log 2>&1 &
t_start=$(now)
$W device --radio nm --interface wlan0 --template-id "$TMPL" --template-name Lamp --store /run/device.json \
    --host 192.168.77.1 --port 8442 --ap-passphrase "$APPASS" >> $L/device.log 2>&1 &  # appends: the script writes markers into it
DEVICE_PID=$!
for i in $(seq 1 480); do grep -q "access point '.*' open" $L/device.log && break; sleep 0.25; done
t_ap=$(now)
AP=$(sed -n "s/.*access point '\(.*\)' open.*/\1/p" $L/device.log | head -1)
say "ap_ssid=$AP"
say "ap_ready_seconds=$(echo "$t_ap - $t_start" | bc)"
provision provision "Home WiFi" /run/home-pw Kitchen
say "ap_mode=$(nmcli -g 802-11-wireless.mode,ipv4.method,802-11-wireless-security.key-mgmt,802-11-wireless-security.proto con show "$(nmcli -g GENERAL.CONNECTION dev show wlan0)" | tr '\n' ' ')"

# The phone joins the AP by itself first (with the passphrase): DHCP, DNS, the captive redirect.
if wait_ssid "$AP" wlan1 40; then
    # A second try if the first fails: under heavy load the emulated radios can miss the 4-way
    # handshake's 1 s timer (docs/realradio.md, Traps).
    for try in 1 2; do
        nmcli --wait 60 dev wifi connect "$AP" password "$APPASS" ifname wlan1 >> $L/phone-join.log 2>&1 && break
    done
    say "phone_ip=$(nmcli -g IP4.ADDRESS dev show wlan1 | head -1)"
    say "dns_blynk_setup=$($BB nslookup blynk.setup 192.168.4.1 2>/dev/null | awk '/^Address/ {a=$NF} END {print a}')"
    say "dns_other=$($BB nslookup connectivitycheck.gstatic.com 192.168.4.1 2>/dev/null | awk '/^Address/ {a=$NF} END {print a}')"
    reply=$(printf 'GET /generate_204 HTTP/1.0\r\nHost: connectivitycheck.gstatic.com\r\n\r\n' | $BB nc -w 5 192.168.4.1 80 | tr -d '\r')
    say "captive_status=$(echo "$reply" | head -1)"
    say "captive_location=$(echo "$reply" | sed -n 's/^Location: //p')"
    grep -E 'DHCPACK|DHCPOFFER' $L/nm.log | tail -2 > $L/phone-dhcp.txt
    nmcli con delete "$AP" >/dev/null 2>&1
    sleep 1
else
    say "phone_sees_ap=no"
fi

for i in $(seq 1 480); do $BB wget -q -O /dev/null $CLOUD/openapi.json 2>/dev/null && break; sleep 0.5; done
say "cloud_up=$($BB wget -q -O /dev/null $CLOUD/openapi.json && echo 1 || echo 0)"
go provision; finish provision 240
say "provision_done=$(grep -c '"step": "done"' /out/provision.jsonl)"
D=$L/device.log
LOGIN="logged in to the cloud"; OPENED="access point '.*' open"
wait_more "$LOGIN" $D 0 60
say "device_wlan0=$(nmcli -g GENERAL.STATE,IP4.ADDRESS dev show wlan0 | tr '\n' ' ')"
say "opened_before=$(count "$OPENED" $D)"

# Scenario 3: the home AP restarting (times from now: /out/e2e.txt). The next two commands'
# imports meanwhile.
DEVICE_ID=$(grep '"step": "done"' /out/provision.jsonl | grep -o '"id": *[0-9]*' | head -1 | grep -o '[0-9]*$')
warm reconfigure reconfigure "$DEVICE_ID" --cloud $CLOUD
provision provision-office "Office WiFi" /run/office-pw Office
n=$(count "$LOGIN" $D); t0=$(now)
ap_stop wlan2                                   # the home AP goes away ...
wait_more "link lost\|cloud connection lost" $D 0 90 && say "ap_gone_noticed=$(echo "$(now) - $t0" | bc)"
sleep 5
ap_start wlan2 "ssid=Home WiFi" "wpa=2" "wpa_key_mgmt=WPA-PSK" "rsn_pairwise=CCMP" "wpa_passphrase=correct horse"
t1=$(now)                                       # ... and comes back 5 s after the device noticed
wait_more "$LOGIN" $D $n 240 && say "ap_back_relogin=$(echo "$(now) - $t1" | bc)"
say "opened_after_ap_restart=$(count "$OPENED" $D)"

# Scenario 3: failover between two saved networks. The cloud sends the device back to setup
# mode (`wifiprov reconfigure`, the console's Reconfigure); the phone provisions it through its
# WPA2 AP onto Office WiFi (a new device in the cloud, as when an app adds a device again); it
# logs in and keeps both networks (Office, then Home). Office's AP then stops: the device must
# rejoin Home and the cloud without reopening its AP.
n_open=$(count "$OPENED" $D)
go reconfigure; t0=$t_go; finish reconfigure 60
wait_more "$OPENED" $D $n_open 90 && say "reconfigure_ap_open=$(echo "$(now) - $t0" | bc)"
n=$(count "$LOGIN" $D)
echo "=== e2e.sh: provisioning onto Office WiFi" >> $D
go provision-office; finish provision-office 240
say "provision-office_done=$(grep -c '"step": "done"' /out/provision-office.jsonl)"
wait_more "$LOGIN" $D $n 60
say "office_joined=$(count "joined 'Office WiFi' with address 192.168.78." $D)"
say "saved_networks=$(grep -o '"ssid": *"[0-9a-f]*"' /run/device.json | grep -o '[0-9a-f]*"$' | tr -d '"' | tr '\n' ' ')"
say "opened_before_failover=$(count "$OPENED" $D)"
n=$(count "$LOGIN" $D); n_home=$(count "joined 'Home WiFi'" $D); n_lost=$(count "link lost\|cloud connection lost" $D)
echo "=== e2e.sh: Office WiFi's AP stops" >> $D
t0=$(now)
ap_stop wlan3                                   # network B goes away
wait_more "link lost\|cloud connection lost" $D $n_lost 90 && say "failover_noticed=$(echo "$(now) - $t0" | bc)"
wait_more "joined 'Home WiFi'" $D $n_home 150 && say "failover_joined=$(echo "$(now) - $t0" | bc)"
wait_more "$LOGIN" $D $n 60 && say "failover_relogin=$(echo "$(now) - $t0" | bc)"
say "opened_after_failover=$(count "$OPENED" $D)"
say "device_wlan0_after_failover=$(nmcli -g GENERAL.STATE,IP4.ADDRESS dev show wlan0 | tr '\n' ' ')"

# Scenario 4: NetworkManager restarted under the running agent, then the radios removed.
n=$(count "$LOGIN" $D); t0=$(now)
echo "=== e2e.sh: NetworkManager restarts" >> $D
nm_stop; say "nm_stopped_seen=$(count "NetworkManager stopped\|NetworkManager left" $D)"
sleep 3
nm_start; t1=$(now)
wait_more "$LOGIN" $D $n 180 && say "nm_restart_relogin=$(echo "$(now) - $t1" | bc)"
say "opened_after_nm_restart=$(count "$OPENED" $D)"
say "device_wlan0_after_nm=$(nmcli -g GENERAL.STATE,IP4.ADDRESS dev show wlan0 | tr '\n' ' ')"

n=$(count "link lost" $D); t0=$(now)
rmmod mac80211_hwsim                            # every radio is removed
wait_more "link lost" $D $n 30 && say "radio_removed_noticed=$(echo "$(now) - $t0" | bc)"
wait_more "no WiFi device 'wlan0'" $D 0 30
say "device_alive_after_removal=$([ -e /proc/$DEVICE_PID ] && echo yes || echo no)"
kill $DEVICE_PID; sleep 2
save_logs
