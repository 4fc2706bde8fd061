#!/bin/sh
# Starts a node of compose.yaml's NATS cluster (profile cluster). GENERATED
# with cluster.conf (see there).
# Each identity's password comes from its compose secret
# (/run/secrets/nats_password_<identity>) into the variable the configuration
# names; a missing or empty one stops the server from starting.
set -eu
for id in gateway identity crm support alerts projector operator migrate; do
  f="/run/secrets/nats_password_$id"
  if [ ! -s "$f" ]; then
    echo "nats: $f is missing or empty: set NATS_PASSWORD_$(echo "$id" | tr a-z A-Z)" >&2
    exit 1
  fi
  export "NATS_PASSWORD_$(echo "$id" | tr a-z A-Z)=$(cat "$f")"
done
# The routes carry the route password (a URL: keep it to letters and digits,
# e.g. openssl rand -hex 24); a node ignores the route to itself.
f="/run/secrets/nats_route_password"
if [ ! -s "$f" ]; then
  echo "nats: $f is missing or empty: set NATS_ROUTE_PASSWORD" >&2
  exit 1
fi
export "NATS_ROUTE_PASSWORD=$(cat "$f")"
routes=""
for node in nats-1 nats-2 nats-3; do
  routes="$routes${routes:+,}nats-route://route:$NATS_ROUTE_PASSWORD@$node:6222"
done
exec nats-server -c /etc/nats/cluster.conf --routes "$routes" "$@"
