# Group "ble": real BlueZ on two virtual LE controllers (btvirt). `wifiprov device --ble` (its
# WiFi on the sim air, its BLE through BlueZ on hci0) is provisioned by `wifiprov provision --ble`
# (bleak on hci1) against a real `wifiprov cloud`: a wrong WiFi password first (wifiprov's
# provisioner session in the helper's process: one Python start fewer), then the right one with
# `wifiprov provision --ble` (the device logs in and is named). Then blynk-provisioning's own
# device session on hci0, provisioned by wifiprov's provisioner session from hci1.
# Results: /out/ble.txt (KEY=VALUE), /out/ble-right.jsonl.
. $rr_root/tests/realradio/guest/ble_lib.sh
R=/out/ble.txt; : > $R
say() { echo "$1" >> $R; log "$1"; }
W="$PY -m wifiprov"
export WIFIPROV_CONFIG_DIR=/run/phone
CLOUD=http://127.0.0.1:8080

bt_start || { say "bluetooth=failed"; save_logs; exit 1; }
say "bluetooth=ready"
# The helper: the sim air's home network, the pulse advertisement, the cloud's database and the
# provisioner's saved session (see ble_helper.py), then blynk-provisioning's device on "go".
$PY -u $G/ble_helper.py --air /run/air --ready /run/helper.ready --go /run/blynk.go --out $R \
    --db /run/cloud.db --cloud $CLOUD --wrong-done /run/wrong.done > $L/helper.log 2>&1 &
HELPER_PID=$!
printf '%s\n' 'correct horse' > /run/home-pw
for i in $(seq 1 1200); do [ -s /run/helper.ready ] && break; kill -0 $HELPER_PID 2>/dev/null || break; sleep 0.1; done
[ -s /run/helper.ready ] || { say "helper=failed"; save_logs; exit 1; }
TMPL=$(cat /run/helper.ready)
say "template=$TMPL"
# The cloud and the device start together (each takes many seconds to start under TCG).
$W cloud --db /run/cloud.db --http 127.0.0.1:8080 --gateway 127.0.0.1:8442 --public-host 127.0.0.1 > $L/cloud.log 2>&1 &
CLOUD_PID=$!
$W device --radio sim --air /run/air --ble --ble-adapter hci0 --template-id "$TMPL" \
    --template-name Lamp --store /run/device.json --host 127.0.0.1 --port 8442 --port-ssl 0 \
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

provision() {  # name password-file
    timeout 200 $W provision --ble --ble-adapter hci1 --cloud $CLOUD --template Lamp \
        --ssid "Home WiFi" --password-file "$2" --name Kitchen --json \
        > /out/ble-$1.jsonl 2> $L/provision-$1.err
    say "provision_${1}_rc=$?"
}
provision right /run/home-pw
say "device_state=$(grep -o '[A-Z_]* -> [A-Z_]*' $L/device.log | tail -1)"
say "secrets_in_device_log=$(grep -c -e 'correct horse' -e 'not the password' $L/device.log)"

kill $DEVICE_PID; wait $DEVICE_PID 2>/dev/null
touch /run/blynk.go
for i in $(seq 1 1500); do kill -0 $HELPER_PID 2>/dev/null || break; sleep 0.1; done
kill $HELPER_PID $CLOUD_PID 2>/dev/null
save_logs
exit 0
