#!/usr/bin/env bash
# The README quick start in one command: build jetmesh, start a server on a throwaway data
# directory, push the example schema catalog, apply the example rules, watch events with
# `jetmesh tail`, publish over the CLI and over HTTP, show rejected events with their
# reasons, the rules' backlog and the streams, and stop the server.
# Ports: JETMESH_DEMO_NATS (default 127.0.0.1:4222), JETMESH_DEMO_HTTP (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

nats_addr=${JETMESH_DEMO_NATS:-127.0.0.1:4222}
http_addr=${JETMESH_DEMO_HTTP:-127.0.0.1:8080}
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

echo "building jetmesh..."
go build -o "$work/jetmesh" ./cmd/jetmesh
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

step "jetmesh rules ls   # PENDING: events waiting for each rule's service (the sidecar delivers them)"
"$jm" rules ls

step "jetmesh streams ls"
"$jm" streams ls

step "jetmesh dlq ls   # every rejected event, with the reason"
"$jm" dlq ls
