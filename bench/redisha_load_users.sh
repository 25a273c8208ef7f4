#!/usr/bin/env bash
# redisha_load_users.sh - the users bench_store_redis looks up (referee:user:<200000+i>@example.com,
# i < USERS) written through redis-cli into a master or a cluster (-c follows MOVED), for runs of
# bench_store_redis against redis-sentinel:// and redis-cluster:// URLs (SPEC §12).
#   bench/redisha_load_users.sh PORT USERS [-c]
set -euo pipefail
port=$1 users=$2 mode=${3:-}
for ((i = 0; i < users; i++)); do
	echo "HSET referee:user:$((200000 + i))@example.com ha1_md5 0123456789abcdef0123456789abcdef permissions LocalDialing"
done | redis-cli $mode -p "$port" >/dev/null
