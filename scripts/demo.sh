#!/usr/bin/env bash
# The README quick start in one command: build jetmesh, start a server on a throwaway data
# directory, push the example schema catalog, apply the example rules, watch events with
# `jetmesh tail`, publish over the CLI and over HTTP, show rejected events with their
# reasons, then start the example billing service with its sidecar and watch the waiting
# event travel publish → rule → sidecar → handler, and stop everything.
# Ports: JETMESH_DEMO_NATS (default 127.0.0.1:4222), JETMESH_DEMO_HTTP (127.0.0.1:8080),
# JETMESH_DEMO_SERVICE (the billing service, 127.0.0.1:8081), JETMESH_DEMO_SIDECAR
# (its sidecar, 127.0.0.1:3500).
set -euo pipefail
cd "$(dirname "$0")/.."

nats_addr=${JETMESH_DEMO_NATS:-127.0.0.1:4222}
http_addr=${JETMESH_DEMO_HTTP:-127.0.0.1:8080}
service_addr=${JETMESH_DEMO_SERVICE:-127.0.0.1:8081}
sidecar_addr=${JETMESH_DEMO_SIDECAR:-127.0.0.1:3500}
work=$(mktemp -d)
server_pid="" service_pid="" sidecar_pid=""
cleanup() {
  for pid in $sidecar_pid $service_pid $server_pid; do
    kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
  done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

echo "building jetmesh..."
go build -o "$work/jetmesh" ./cmd/jetmesh
go build -o "$work/billing" ./examples/billing
jm="$work/jetmesh"
export JETMESH_SERVER="nats://$nats_addr"

step "jetmesh server --data $work/data --nats $nats_addr --http $http_addr &"
"$jm" server --data "$work/data" --nats "$nats_addr" --http "$http_addr" 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 300); do
  grep -q 'jetmesh server ready' "$work/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
grep 'jetmesh server ready' "$work/server.log" || { echo "server not ready after 30s"; cat "$work/server.log"; exit 1; }

step "jetmesh schemas check examples/catalog   # what CI runs on every pull request"
"$jm" schemas check examples/catalog

step "jetmesh schemas push examples/catalog"
"$jm" schemas push examples/catalog

step "jetmesh rules apply -f examples/rules   # route events to services: one durable consumer per rule"
"$jm" rules apply -f examples/rules
for _ in $(seq 100); do
  [ "$("$jm" rules ls -o json | grep -c '"consumerReady": true')" = 2 ] && break
  sleep 0.1
done

"$jm" tail --all -n 2 > "$work/tail.out" &
tail_pid=$!

order='{"orderId":"o-1","customerId":"c-7","total":{"cents":12000,"currency":"EUR"}}'
step "jetmesh publish --type orders.created --source /shop --data '$order'"
"$jm" publish --type orders.created --source /shop --data "$order"

step "POST http://$http_addr/v1/events (structured CloudEvent)"
body='{"specversion":"1.0","id":"pay-1","source":"/billing","type":"payments.captured","data":{"orderId":"o-1"}}'
if command -v curl > /dev/null; then
  curl -sS -X POST "http://$http_addr/v1/events" -H 'Content-Type: application/cloudevents+json' -d "$body"
else
  "$jm" publish --type payments.captured --source /billing --id pay-1 --data '{"orderId":"o-1"}'
fi

step "jetmesh publish --type orders.created --data '{\"orderId\":\"o-2\"}'   # rejected: breaks the schema"
"$jm" publish --type orders.created --source /shop --data '{"orderId":"o-2"}' || echo "(exit code $?)"

step "jetmesh publish --type orders.shipped ...   # rejected: no schema registered for the type"
"$jm" publish --type orders.shipped --source /shop --data '{}' || echo "(exit code $?)"

step "jetmesh publish --type Orders.Created ...   # rejected: bad type token"
"$jm" publish --type Orders.Created --source /shop --data '{}' || echo "(exit code $?)"

step "jetmesh tail --all -n 2"
wait "$tail_pid"
cat "$work/tail.out"

step "jetmesh rules ls   # PENDING: events waiting for each rule's service (its sidecar delivers them)"
"$jm" rules ls

step "jetmesh streams ls"
"$jm" streams ls

step "jetmesh dlq ls   # every rejected event, with the reason"
"$jm" dlq ls

step "go run ./examples/billing --listen $service_addr &   # the billing service: a plain HTTP handler"
"$work/billing" --listen "$service_addr" > "$work/billing.out" 2>&1 &
service_pid=$!

step "jetmesh sidecar --service billing --handler http://$service_addr --app-health http://$service_addr/healthz --listen $sidecar_addr &"
"$jm" sidecar --service billing --handler "http://$service_addr" --app-health "http://$service_addr/healthz" \
  --app-health-interval 200ms --listen "$sidecar_addr" 2> "$work/sidecar.log" &
sidecar_pid=$!
for _ in $(seq 300); do
  if command -v curl > /dev/null; then
    curl -sf "http://$sidecar_addr/readyz" > /dev/null && break
  else
    grep -q 'delivering rule' "$work/sidecar.log" && break
  fi
  kill -0 "$sidecar_pid" 2>/dev/null || { cat "$work/sidecar.log"; exit 1; }
  sleep 0.1
done
wait_for_billing() {
  for _ in $(seq 100); do
    [ "$(grep -c '^billing:' "$work/billing.out" || true)" -ge "$1" ] && return
    sleep 0.1
  done
  echo "billing did not receive $1 events"; cat "$work/sidecar.log"; exit 1
}
wait_for_billing 1
echo "(the order published earlier waited in its rule's consumer; the sidecar delivered it:)"
grep '^billing:' "$work/billing.out"

big='{"specversion":"1.0","id":"o-3","source":"/shop","type":"orders.created","data":{"orderId":"o-3","customerId":"c-9","total":{"cents":25000,"currency":"EUR"}}}'
step "POST http://$sidecar_addr/v1/events   # a service publishes through its own sidecar, on localhost"
if command -v curl > /dev/null; then
  curl -sS -X POST "http://$sidecar_addr/v1/events" -H 'Content-Type: application/cloudevents+json' -d "$big"
  echo
else
  "$jm" publish --type orders.created --source /shop --id o-3 --data '{"orderId":"o-3","customerId":"c-9","total":{"cents":25000,"currency":"EUR"}}'
fi
small='{"orderId":"o-4","customerId":"c-9","total":{"cents":900,"currency":"EUR"}}'
step "jetmesh publish --type orders.created --data '$small'   # 9.00 EUR: the rule's pattern does not match"
"$jm" publish --type orders.created --source /shop --data "$small"
wait_for_billing 2
sleep 0.3
step "what the billing service printed"
cat "$work/billing.out" | grep '^billing:'

step "jetmesh rules ls   # billing has caught up; ledger has no sidecar running, so its event waits"
"$jm" rules ls
