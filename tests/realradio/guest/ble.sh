# Group "ble": real BlueZ on two virtual LE controllers (btvirt), beside the WiFi stack (hwsim,
# NetworkManager, hostapd: guest/lib.sh). `wifiprov device --ble` (its WiFi on the sim air, its BLE
# through BlueZ on hci0) is provisioned by `wifiprov provision --ble` (bleak on hci1) against a
# real `wifiprov cloud`: a wrong WiFi password first (wifiprov's provisioner session in the
# helper's process: one Python start fewer), then the right one with `wifiprov provision --ble`
# (the device logs in and is named). Then blynk-provisioning's own device session on hci0
# (`configure_network=False`), provisioned by wifiprov's provisioner session from hci1. Then
# blynk-provisioning's whole ceremony (guest/blynk_device.py: `get_credentials()` with
# `configure_network=True`, then its MQTT 5 TLS check-in), provisioned by `wifiprov provision
# --ble`: a wrong password, then the right one; it joins "Home WiFi" (hostapd on wlan1, in
# ns-wlan1) through NetworkManager on wlan0 and checks in across the air to the cloud, which runs
# in ns-wlan1 at 192.168.77.1 (the provisioner reaches its API over a veth, 10.99.0.1).
# Results: /out/ble.txt (KEY=VALUE), /out/ble-*.jsonl.
. $rr_root/tests/realradio/guest/lib.sh
. $rr_root/tests/realradio/guest/ble_lib.sh
R=/out/ble.txt; : > $R
say() { echo "$1" >> $R; log "$1"; }
W="$PY -m wifiprov"
export WIFIPROV_CONFIG_DIR=/run/phone
CLOUD=http://10.99.0.1:8080
NS=ns-wlan1

# make_tls DIR: a throw-away CA (DIR/ca.pem) and the cloud's certificate for 192.168.77.1
make_tls() {
    mkdir -p $1 && cd $1 || return 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=realradio-test-CA -keyout ca.key -out ca.pem 2>/dev/null || return 1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=192.168.77.1 \
        -keyout key.pem -out cloud.csr 2>/dev/null || return 1
    echo "subjectAltName=IP:192.168.77.1" > san.ext
    openssl x509 -req -in cloud.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile san.ext -out cert.pem 2>/dev/null
    cd /
}

# forget_devices ADAPTER: BlueZ forgets the devices it knows there, as a phone meeting a new
# device would (btvirt's hci0 is three devices in turn at one address: a new provisioner's scan
# did not report the stale object's new advertisement)
forget_devices() {
    for d in $(busctl --system tree org.bluez | grep -o "/org/bluez/$1/dev_[0-9A-F_]*$" | sort -u); do
        busctl --system call org.bluez /org/bluez/$1 org.bluez.Adapter1 RemoveDevice o $d
    done
}

bt_start || { say "bluetooth=failed"; save_logs; exit 1; }
say "bluetooth=ready"
# blynk-provisioning's whole ceremony: its Python start now, its pairing on /run/full.go
SSL_CERT_FILE=/run/tls/ca.pem $PY -u $G/blynk_device.py --go /run/full.go \
    --creds /run/blynk/credentials.env --out $R --stop /run/full.stop > $L/blynk-device.log 2>&1 &
FULL_PID=$!
# The helper: the sim air's home network, the pulse advertisement, the cloud's database and the
# provisioner's saved session (see ble_helper.py), then blynk-provisioning's device on "go".
$PY -u $G/ble_helper.py --air /run/air --ready /run/helper.ready --go /run/blynk.go --out $R \
    --db /run/cloud.db --cloud $CLOUD --wrong-done /run/wrong.done --stop /run/full.stop \
    > $L/helper.log 2>&1 &
HELPER_PID=$!
printf '%s\n' 'correct horse' > /run/home-pw
start_stack 2 wlan1 || { say "wifi=failed"; save_logs; exit 1; }
ap_start wlan1 "ssid=Home WiFi" "wpa=2" "wpa_key_mgmt=WPA-PSK" "rsn_pairwise=CCMP" "wpa_passphrase=correct horse" || { say "wifi=failed"; save_logs; exit 1; }
dhcp_start wlan1 192.168.77
ip link add mobile type veth peer name mobile netns $NS
ip addr add 10.99.0.2/24 dev mobile && ip link set mobile up
ip -n $NS addr add 10.99.0.1/24 dev mobile && ip -n $NS link set mobile up
make_tls /run/tls || { say "tls=failed"; save_logs; exit 1; }
say "wifi=ready"
for i in $(seq 1 1200); do [ -s /run/helper.ready ] && break; kill -0 $HELPER_PID 2>/dev/null || break; sleep 0.1; done
[ -s /run/helper.ready ] || { say "helper=failed"; save_logs; exit 1; }
TMPL=$(cat /run/helper.ready)
say "template=$TMPL"
# The cloud and the device start together (each takes many seconds to start under TCG), both in
# the home network's namespace (the device's WiFi is the sim air: it reaches the cloud there).
ip netns exec $NS $W cloud --db /run/cloud.db --http 0.0.0.0:8080 --gateway 0.0.0.0:8442 \
    --mqtt-tls 0.0.0.0:8883 --cert /run/tls/cert.pem --key /run/tls/key.pem \
    --public-host 192.168.77.1 > $L/cloud.log 2>&1 &
CLOUD_PID=$!
ip netns exec $NS $W device --radio sim --air /run/air --ble --ble-adapter hci0 --template-id "$TMPL" \
    --template-name Lamp --store /run/device.json --host 192.168.77.1 --port 8442 --port-ssl 0 \
    > $L/device.log 2>&1 &
DEVICE_PID=$!
for i in $(seq 1 600); do grep -q "Bluetooth LE advertising on" $L/device.log && break; kill -0 $DEVICE_PID 2>/dev/null || break; sleep 0.1; done
say "ble_name=$(sed -n "s/.*Bluetooth LE provisioning ready as '\(.*\)'.*/\1/p" $L/device.log | head -1)"
say "device_advertising=$(grep -c 'Bluetooth LE advertising on' $L/device.log)"
say "device_rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$DEVICE_PID/status)"
for i in $(seq 1 480); do $BB wget -q -O /dev/null $CLOUD/openapi.json 2>/dev/null && break; sleep 0.5; done
say "cloud_up=$($BB wget -q -O /dev/null $CLOUD/openapi.json && echo 1 || echo 0)"
# The helper tries a wrong password first (wifiprov's provisioner session, in its process).
for i in $(seq 1 1800); do [ -f /run/wrong.done ] && break; kill -0 $HELPER_PID 2>/dev/null || break; sleep 0.1; done

provision() {  # name password-file device-name
    timeout 200 $W provision --ble --ble-adapter hci1 --cloud $CLOUD --template Lamp \
        --ssid "Home WiFi" --password-file "$2" --name "$3" --json \
        > /out/ble-$1.jsonl 2> $L/provision-$1.err
    say "provision_${1}_rc=$?"
}
provision right /run/home-pw Kitchen
say "device_state=$(grep -o '[A-Z_]* -> [A-Z_]*' $L/device.log | tail -1)"
say "secrets_in_device_log=$(grep -c -e 'correct horse' -e 'not the password' $L/device.log)"

kill $DEVICE_PID; wait $DEVICE_PID 2>/dev/null
touch /run/blynk.go
for i in $(seq 1 1500); do grep -q '^blynk_saved_server=' $R && break; kill -0 $HELPER_PID 2>/dev/null || break; sleep 0.1; done

# blynk-provisioning's whole ceremony: a wrong password (its NetworkManager join fails), then the
# right one (it joins, returns the token and server, checks in over MQTT 5 with TLS).
echo "$TMPL" > /run/full.go
printf '%s\n' 'not the password' > /run/wrong-pw
forget_devices hci1; provision full-wrong /run/wrong-pw Porch
forget_devices hci1; provision full-right /run/home-pw Porch
touch /run/full.stop
end=$(( $(uptime_s) + 60 ))
while kill -0 $FULL_PID 2>/dev/null && [ $(uptime_s) -lt $end ]; do sleep 0.5; done
say "full_device_exited=$(kill -0 $FULL_PID 2>/dev/null && echo no || echo yes)"
say "full_checkin=$(grep -c 'MQTT device checkin sent: info/mcu' $L/blynk-device.log)"
say "full_wlan0=$(nmcli -g GENERAL.STATE,GENERAL.CONNECTION,IP4.ADDRESS dev show wlan0 | tr '\n' ' ')"
say "full_secrets_in_logs=$(cat $L/blynk-device.log $L/provision-full-*.err | grep -c -e 'correct horse' -e 'not the password')"
# BlueZ's race (docs/ble.md): a connection whose Connected signal bluetoothd never sent
say "bluez_le_connects=$(grep -c 'device_connect_le()' $L/bluetoothd.log)"
say "bluez_connected_unsignalled=$(grep -c 'is already connected' $L/bluetoothd.log)"
kill $FULL_PID $HELPER_PID $CLOUD_PID 2>/dev/null
save_logs
exit 0
