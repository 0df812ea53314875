#!/usr/bin/env bash
# A private RabbitMQ node for the recordings, from Debian's rabbitmq-server:
# its own data directory, loopback only, ports of its own.
#   rabbitmq.sh start DIR    start a node with its data in DIR and wait until it serves
#   rabbitmq.sh stop DIR     stop it
set -euo pipefail
cmd=${1:?start or stop}
dir=$(realpath -m "${2:?data directory}")
export RABBITMQ_NODENAME=lasthop-rec@localhost
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=${RABBITMQ_NODE_PORT:-5679}
export RABBITMQ_DIST_PORT=$((RABBITMQ_NODE_PORT + 20000))
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_MNESIA_BASE=$dir/mnesia
export RABBITMQ_LOG_BASE=$dir/log
export RABBITMQ_CONFIG_FILE=$dir/rabbitmq
export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export HOME=$dir
bin=/usr/lib/rabbitmq/bin
case $cmd in
start)
  if [ ! -x $bin/rabbitmq-server ]; then
    echo "rabbitmq-server is not installed: apt-get install rabbitmq-server" >&2
    exit 1
  fi
  mkdir -p "$dir/mnesia" "$dir/log"
  echo "[]." > "$dir/enabled_plugins"
  printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\n' "$RABBITMQ_NODE_PORT" > "$dir/rabbitmq.conf"
  nohup $bin/rabbitmq-server > "$dir/server.out" 2>&1 &
  echo $! > "$dir/server.pid"
  $bin/rabbitmqctl -n "$RABBITMQ_NODENAME" wait --pid "$(cat "$dir/server.pid")" --timeout 120 > /dev/null
  echo "rabbitmq serving on 127.0.0.1:$RABBITMQ_NODE_PORT (data in $dir)"
  ;;
stop)
  $bin/rabbitmqctl -n "$RABBITMQ_NODENAME" stop > /dev/null 2>&1 || true
  ;;
esac
