#!/usr/bin/env bash
# A 3-node RabbitMQ 3.10 cluster on this one machine, for comparing clusters (scale item 7).
#
#   bench/rabbit_cluster.sh start     # rabbit-c1..c3@localhost, AMQP 5691-5693, management 15691-15693
#   bench/rabbit_cluster.sh status    # cluster_status as node rabbit-c1 sees it
#   bench/rabbit_cluster.sh uris      # the AMQP URIs, one per line (for warren-perf --uri)
#   bench/rabbit_cluster.sh stop      # stop the three nodes (data kept for the next start)
#   bench/rabbit_cluster.sh clean     # stop and remove everything under $RABBIT_CLUSTER_DIR
#
# It lives apart from any RabbitMQ already running here: its own node names, ports, Erlang
# distribution ports, data, logs, config and enabled-plugins files under $RABBIT_CLUSTER_DIR,
# and its own Erlang cookie (HOME points there), so neither this script nor a mistaken
# rabbitmqctl can reach another node, and the system's cookie files are never read or written.
# Every rabbitmqctl call names its node with -n.  It calls the scripts in /usr/lib/rabbitmq/bin
# directly: the /usr/sbin wrappers switch to the rabbitmq user and that user's cookie.
set -euo pipefail

NODES=${RABBIT_CLUSTER_NODES:-3}
BASE=${RABBIT_CLUSTER_DIR:-/tmp/warren-rabbit-cluster}
RABBIT_BIN=${RABBIT_BIN:-/usr/lib/rabbitmq/bin}
AMQP_BASE=${RABBIT_CLUSTER_AMQP_PORT:-5691}     # node i: 5690+i
MGMT_BASE=${RABBIT_CLUSTER_MGMT_PORT:-15691}    # node i: 15690+i
DIST_BASE=${RABBIT_CLUSTER_DIST_PORT:-25691}    # node i: 25690+i (Erlang distribution)
TIMEOUT=${RABBIT_CLUSTER_TIMEOUT:-120}

node_name() { echo "rabbit-c$1@localhost"; }
node_dir() { echo "$BASE/c$1"; }

# Run a RabbitMQ script for node $1 with that node's environment.
with_node() {
    local i=$1; shift
    local dir; dir=$(node_dir "$i")
    env HOME="$BASE/home" \
        RABBITMQ_NODENAME="$(node_name "$i")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT=$((AMQP_BASE + i - 1)) \
        RABBITMQ_DIST_PORT=$((DIST_BASE + i - 1)) \
        RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/rabbit.pid" \
        "$@"
}

ctl() { local i=$1; shift; with_node "$i" "$RABBIT_BIN/rabbitmqctl" -n "$(node_name "$i")" "$@"; }

prepare() {
    mkdir -p "$BASE/home"
    if [ ! -f "$BASE/home/.erlang.cookie" ]; then
        (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' > "$BASE/home/.erlang.cookie")
    fi
    chmod 400 "$BASE/home/.erlang.cookie"
    for i in $(seq 1 "$NODES"); do
        local dir; dir=$(node_dir "$i")
        mkdir -p "$dir/mnesia" "$dir/log"
        : > "$dir/rabbitmq-env.conf"   # not /etc/rabbitmq/rabbitmq-env.conf
        echo "[rabbitmq_management]." > "$dir/enabled_plugins"
        cat > "$dir/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$((AMQP_BASE + i - 1))
management.tcp.ip = 127.0.0.1
management.tcp.port = $((MGMT_BASE + i - 1))
EOF
    done
}

running() { ctl "$1" ping >/dev/null 2>&1; }

start() {
    prepare
    for i in $(seq 1 "$NODES"); do
        if running "$i"; then
            echo "$(node_name "$i") is already running"
            continue
        fi
        echo "starting $(node_name "$i") (AMQP $((AMQP_BASE + i - 1)), management $((MGMT_BASE + i - 1)))"
        rm -f "$(node_dir "$i")/rabbit.pid"
        with_node "$i" "$RABBIT_BIN/rabbitmq-server" -detached
    done
    for i in $(seq 1 "$NODES"); do
        # Waits for the pid file, then for the node to finish booting.
        ctl "$i" wait --timeout "$TIMEOUT" "$(node_dir "$i")/rabbit.pid" >/dev/null
    done
    local first; first=$(node_name 1)
    for i in $(seq 2 "$NODES"); do
        if ctl 1 cluster_status --formatter json | grep -q "\"$(node_name "$i")\""; then
            continue  # joined on an earlier start
        fi
        echo "joining $(node_name "$i") to $first"
        # join_cluster logs harmless errors about connection tracking tables while the app is
        # stopped: show the output only if a step fails.
        local out
        for step in stop_app "join_cluster $first" start_app; do
            # shellcheck disable=SC2086  # the step's words are its arguments
            if ! out=$(ctl "$i" $step 2>&1); then
                echo "$out" >&2
                exit 1
            fi
        done
    done
    ctl 1 await_online_nodes "$NODES" --timeout "$TIMEOUT" >/dev/null
    echo "cluster of $NODES nodes is up:"
    uris
}

stop() {
    for i in $(seq "$NODES" -1 1); do
        local pidfile; pidfile="$(node_dir "$i")/rabbit.pid"
        if running "$i"; then
            echo "stopping $(node_name "$i")"
            # With the pid file, stop returns once the OS process is gone.
            ctl "$i" stop "$pidfile" >/dev/null
        elif [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "$(node_name "$i") does not answer: killing pid $(cat "$pidfile")"
            kill -9 "$(cat "$pidfile")"
        fi
        rm -f "$pidfile"
    done
}

uris() {
    for i in $(seq 1 "$NODES"); do
        echo "amqp://guest:guest@127.0.0.1:$((AMQP_BASE + i - 1))/%2F"
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) ctl 1 cluster_status ;;
    uris) uris ;;
    clean)
        stop
        rm -rf "$BASE"
        ;;
    *)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
