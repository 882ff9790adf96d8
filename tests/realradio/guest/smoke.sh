. $rr_root/tests/realradio/guest/lib.sh
start_stack 2 wlan1
ap_start wlan1 "ssid=Smoke" "wpa=2" "wpa_key_mgmt=WPA-PSK" "rsn_pairwise=CCMP" "wpa_passphrase=smoke password"
dhcp_start wlan1 192.168.77
wait_ssid Smoke wlan0 30 && log visible
t0=$(date +%s)
$PY -c 'import wifiprov, dbus_fast; print("python ok")'
log "python took $(( $(date +%s) - t0 )) s"
save_logs
