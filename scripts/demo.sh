#!/usr/bin/env bash
# The main job: build fundwatch, start a local nats-server (JetStream) and the
# daemon on the default configuration, publish a realistic sample day of a
# city's treasury payments (bench/city.py, seed 42), and show what the daemon
# made of it: alerts by level and rule, SMS by kind and state, balances, a
# voucher's trace, and a supervisor working one alert through its lifecycle.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target fundwatch >/dev/null
fw=build/daemon/fundwatch

demo=var/demo
rm -rf "$demo"
mkdir -p "$demo"
db=$demo/fundwatch.db
port=${FW_DEMO_NATS_PORT:-4222}
nats_url=nats://127.0.0.1:$port
# The default configuration, with the demo's own store and NATS port; SMS go
# to the log carrier (the default) at a brisk rate and without quiet hours,
# so the whole payroll is "sent" within the demo; tick rules (vouchers stuck
# at the bank) run every 5 s instead of every minute.
opts=(-c etc/fundwatch.conf -o store.path=$db -o nats.url=$nats_url
      -o sms.rate=2000 -o sms.quiet_hours=off -o sms.per_number_interval=0
      -o rules.tick=5s)

cleanup() {
  [ -n "${fw_pid:-}" ] && kill -TERM "$fw_pid" 2>/dev/null && wait "$fw_pid" 2>/dev/null || true
  [ -n "${nats_pid:-}" ] && kill -TERM "$nats_pid" 2>/dev/null && wait "$nats_pid" 2>/dev/null || true
}
trap cleanup EXIT

echo "== nats-server -js on port $port"
nats-server -js -a 127.0.0.1 -p "$port" -sd "$demo/nats" >"$demo/nats.log" 2>&1 &
nats_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

echo "== fundwatch run (log: $demo/fundwatch.log)"
$fw run "${opts[@]}" 2>"$demo/fundwatch.log" &
fw_pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:8640/readyz >/dev/null && break; sleep 0.2; done

echo "== sample city: 60 units, a day of vouchers, payroll for 10,000 staff (seed 42)"
python3 bench/city.py --seed 42 --out "$demo/city.jsonl"
total=$(grep -c . "$demo/city.jsonl")
$fw publish "${opts[@]}" "$demo/city.jsonl"

echo "== waiting for the daemon to take all $total messages"
for _ in $(seq 600); do
  done_n=$(sqlite3 "$db" "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM dlq)")
  [ "$done_n" -ge "$total" ] && break
  sleep 0.5
done
for _ in $(seq 120); do
  q=$(sqlite3 "$db" "SELECT count(*) FROM sms_outbox WHERE status IN ('queued','sending')")
  [ "$q" -eq 0 ] && break
  sleep 0.5
done
echo "   stored: $done_n of $total"
sleep 6 # one tick: vouchers sent to the bank and never paid (stuck_voucher)

$fw report "${opts[@]}"

echo
echo "== the open red alerts (fundwatch alerts list --level red --status open)"
$fw alerts list "${opts[@]}" --level red --status open --limit 8

first=$($fw alerts list "${opts[@]}" --level orange --status open --json | python3 -c \
  'import json,sys; d=json.load(sys.stdin); items=d["items"] if isinstance(d,dict) else d; print(items[-1]["alert_id"] if items else "")')
if [ -n "$first" ]; then
  echo
  echo "== a supervisor works $first through its lifecycle"
  $fw alerts transition "${opts[@]}" "$first" acknowledged --by sam --note "收到，核实中"
  $fw alerts transition "${opts[@]}" "$first" confirmed --by sam --note "核实为违规：已调取合同与发票"
  $fw alerts transition "${opts[@]}" "$first" resolved --by sam --note "已责令单位退回资金并整改"
  $fw alerts show "${opts[@]}" "$first"
fi

voucher=$(sqlite3 "$db" "SELECT voucher_no FROM vouchers WHERE state='paid' ORDER BY voucher_no LIMIT 1")
echo
echo "== trace a paid voucher back to its funding documents (fundwatch ledger trace $voucher)"
$fw ledger trace "${opts[@]}" "$voucher"

# A voucher of the city, as the payment system would send it before paying:
# once with an amount above its indicator's available balance, once small.
python3 - "$demo/city.jsonl" "$db" "$demo" <<'PY'
import json, sqlite3, sys
city, db, out = sys.argv[1:4]
con = sqlite3.connect(db)
for line in open(city, encoding="utf-8"):
    m = json.loads(line)
    d = m.get("data")
    if not (isinstance(d, dict) and m["subject"].startswith("fiscal.voucher.")
            and d.get("event") == "created" and d.get("settle_method") == "transfer"
            and d.get("occurred_at", "").startswith("2024-06-12T10")):
        continue
    row = con.execute("SELECT allocated - frozen - paid FROM indicators WHERE indicator_id = ?",
                      (d["indicator_id"],)).fetchone()
    if not row or row[0] <= 0:
        continue
    d.pop("id", None)
    for name, fen in (("check-over.json", row[0] + 500000), ("check-ok.json", 80000)):
        d["voucher_no"] = "ZF-CHECK-" + name.split(".")[0].split("-")[1].upper()
        d["amount"] = "%d.%02d" % divmod(fen, 100)
        json.dump(d, open(f"{out}/{name}", "w", encoding="utf-8"), ensure_ascii=False)
    break
PY
echo
echo "== pre-payment check, a voucher above its indicator's balance (fundwatch check; exit 3 = block)"
$fw check "${opts[@]}" "$demo/check-over.json" || echo "   exit $?"
echo "== the same voucher for 800.00 yuan"
$fw check "${opts[@]}" "$demo/check-ok.json" || echo "   exit $?"

echo
echo "== audit chain (fundwatch audit verify)"
$fw audit verify "${opts[@]}"

echo
echo "== the same over HTTP: curl -H 'Authorization: Bearer demo-viewer-token-0001' http://127.0.0.1:8640/api/alerts?level=red&limit=2"
curl -s -H 'Authorization: Bearer demo-viewer-token-0001' 'http://127.0.0.1:8640/api/alerts?level=red&limit=2'
echo
