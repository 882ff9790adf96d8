# Group "failures": wifiprov's NM backends against hostapd, case by case (radio_cases.py).
. $rr_root/tests/realradio/guest/lib.sh
start_stack 3 wlan1 || exit 1
: > /out/cases.jsonl
$PY $rr_root/tests/realradio/guest/radio_cases.py $(echo "$rr_cases" | tr ',' ' ')
rc=$?
save_logs
exit $rc
