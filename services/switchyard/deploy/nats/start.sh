#!/bin/sh
# Starts compose.yaml's NATS server. GENERATED with nats.conf (see there).
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
exec nats-server -c /etc/nats/nats.conf "$@"
