# Group "e2e": `wifiprov device --radio nm` (wlan0) opens its AP through NetworkManager; a phone
# radio (wlan1, the same NM) joins it, gets an address by DHCP, resolves names and is redirected
# to the portal; `wifiprov provision --wifi nm` provisions the device, which joins the "home"
# network (hostapd on wlan2, in ns-wlan2, WPA2, DHCP and DNS by dnsmasq) and logs in to a
# `wifiprov cloud` running in ns-wlan2 at 192.168.77.1. The phone reaches the cloud's API over
# a veth ("mobile data", 10.99.0.1). Results: /out/e2e.txt (KEY=VALUE), /out/provision.jsonl.
. $rr_root/tests/realradio/guest/lib.sh
R=/out/e2e.txt; : > $R
say() { echo "$1" >> $R; log "$1"; }
now() { date +%s.%N; }
W="$PY -m wifiprov"
export WIFIPROV_CONFIG_DIR=/run/phone
start_stack 3 wlan2 || exit 1
ap_start wlan2 "ssid=Home WiFi" "wpa=2" "wpa_key_mgmt=WPA-PSK" "rsn_pairwise=CCMP" "wpa_passphrase=correct horse" || exit 1
dhcp_start wlan2 192.168.77
ip link add mobile type veth peer name mobile netns ns-wlan2
ip addr add 10.99.0.2/24 dev mobile && ip link set mobile up
ip -n ns-wlan2 addr add 10.99.0.1/24 dev mobile && ip -n ns-wlan2 link set mobile up
CLOUD=http://10.99.0.1:8080
printf '%s\n' 'owner password 1' > /run/owner-pw
printf '%s\n' 'correct horse' > /run/home-pw

ip netns exec ns-wlan2 $W cloud init --db /run/cloud.db --email owner@example.com --password-file /run/owner-pw > $L/cloud-init.log 2>&1 || { say "cloud_init=failed"; save_logs; exit 1; }
ip netns exec ns-wlan2 $W cloud --db /run/cloud.db --http 0.0.0.0:8080 --gateway 0.0.0.0:8442 --public-host 192.168.77.1 > $L/cloud.log 2>&1 &
for i in $(seq 1 120); do $BB wget -q -O /dev/null $CLOUD/openapi.json 2>/dev/null && break; sleep 0.5; done
$W login --cloud $CLOUD --email owner@example.com --password-file /run/owner-pw > $L/login.log 2>&1 || { say "login=failed"; save_logs; exit 1; }
TMPL=$($W templates create Lamp 2>&1 | grep -o 'TMPL[0-9A-Za-z]*' | head -1)
say "template=$TMPL"

t_start=$(now)
$W device --radio nm --interface wlan0 --template-id "$TMPL" --template-name Lamp --store /run/device.json \
    --host 192.168.77.1 --port 8442 > $L/device.log 2>&1 &
DEVICE_PID=$!
for i in $(seq 1 240); do grep -q "access point '.*' open" $L/device.log && break; sleep 0.25; done
t_ap=$(now)
AP=$(sed -n "s/.*access point '\(.*\)' open.*/\1/p" $L/device.log | head -1)
say "ap_ssid=$AP"
say "ap_ready_seconds=$(echo "$t_ap - $t_start" | bc)"
say "ap_mode=$(nmcli -g 802-11-wireless.mode,ipv4.method con show "$(nmcli -g GENERAL.CONNECTION dev show wlan0)" | tr '\n' ' ')"

# The phone joins the AP by itself first: DHCP, DNS, the captive portal's redirect.
if wait_ssid "$AP" wlan1 40; then
    nmcli --wait 60 dev wifi connect "$AP" ifname wlan1 > $L/phone-join.log 2>&1
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

# Provisioning, as a user would run it on a laptop.
t_prov=$(now)
$W provision --wifi nm --interface wlan1 --cloud $CLOUD --template Lamp --ssid "Home WiFi" \
    --password-file /run/home-pw --name Kitchen --json 2> $L/provision.err | while IFS= read -r line; do
        echo "$(now) $line"; done > /out/provision.jsonl
say "provision_done=$(grep -c '"step": "done"' /out/provision.jsonl)"
say "provision_seconds=$(echo "$(now) - $t_prov" | bc)"
for i in $(seq 1 60); do grep -q "logged in to the cloud" $L/device.log && break; sleep 0.5; done
$W devices --json --cloud $CLOUD > /out/devices.json 2>> $L/provision.err
say "device_wlan0=$(nmcli -g GENERAL.STATE,IP4.ADDRESS dev show wlan0 | tr '\n' ' ')"

# Scenario 3 and 4 on the provisioned, running device (times from now: /out/e2e.txt).
D=$L/device.log
LOGIN="logged in to the cloud"; OPENED="access point '.*' open"
say "opened_before=$(count "$OPENED" $D)"
n=$(count "$LOGIN" $D); t0=$(now)
ap_stop wlan2                                   # the home AP goes away ...
wait_more "link lost\|cloud connection lost" $D 0 90 && say "ap_gone_noticed=$(echo "$(now) - $t0" | bc)"
sleep 5
ap_start wlan2 "ssid=Home WiFi" "wpa=2" "wpa_key_mgmt=WPA-PSK" "rsn_pairwise=CCMP" "wpa_passphrase=correct horse"
t1=$(now)                                       # ... and comes back 5 s after the device noticed
wait_more "$LOGIN" $D $n 240 && say "ap_back_relogin=$(echo "$(now) - $t1" | bc)"
say "opened_after_ap_restart=$(count "$OPENED" $D)"

n=$(count "$LOGIN" $D); t0=$(now)
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
