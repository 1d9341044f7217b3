#!/bin/bash
# HEALTHCHECK of the beamlink image (and the Kubernetes probes): healthy while the node is up and
# registered, read from the heartbeat file `beamlink start` keeps (BEAMLINK_HEALTH_FILE,
# src/beamlink/cli/health.py: "<unix time> <node name>", rewritten every second by the node's
# event loop while it is registered with EPMD). Bash builtins only: no interpreter to start, no
# process spawned per look.
#
#   healthcheck.sh                   one look (Kubernetes probes: the period does the rest)
#   healthcheck.sh --watch SECONDS   Docker: keep looking, report a change at once (below)
#
# Healthy means "the node is up (or coming up)", never "clustered": Swarm puts a task into
# tasks.<service> (and the service's virtual IP into DNS at all) only once it is healthy, and
# `beamlink start` resolves NAME@auto by finding its own address there. So while there is no
# heartbeat yet and the host is `auto` (no BEAMLINK_HOST/POD_IP), the node is still starting
# and counts as healthy (should it never find its address, `beamlink start` gives up and the
# container exits). With the host given nothing waits for DNS: only a heartbeat is healthy.
# A heartbeat older than STALE seconds (event loop blocked, registration lost, process killed)
# is unhealthy, and so is one of another node name than BEAMLINK_NODE/RELEASE_NODE's.
#
# Speed and cost. A task joins DNS only at its first healthy result, so the image runs
# `--watch 10` every 100 ms: each run reports a verdict that differs from the last one reported
# at once (remembered next to the heartbeat file), an unchanged one after 10 s (after FAILING_WATCH while
# unhealthy). A task is healthy within ~0.1 s of starting, three failures in a row take ~4 s,
# and a healthy node costs one check per ~10 s: each one a `docker exec` (engine CPU), the
# script itself a few milliseconds. Exit status 0 is healthy, 1 unhealthy; the one output line
# lands in `docker inspect`'s health log.
set -u

file=${BEAMLINK_HEALTH_FILE:-/tmp/beamlink-health}
marker=$file.reported  # the last verdict reported to Docker: 0 healthy, 1 not
STALE=5             # seconds without a heartbeat that make the node unhealthy
FAILING_WATCH=2000  # milliseconds: the longest watch of a node that stays unhealthy
STARTING_STEP=50    # milliseconds between looks while unhealthy or starting
HEALTHY_STEP=500    # milliseconds between looks while healthy

wanted=${BEAMLINK_NODE:-${RELEASE_NODE:-}}
wanted=${wanted%%@*}

waits_for_dns() {
    local name=${BEAMLINK_NODE:-${RELEASE_NODE:-}}
    [[ ${name#*@} == auto && $name == *@* && -z ${BEAMLINK_HOST:-}${POD_IP:-} ]]
}

# One look: sets `why`, returns 0 when healthy.
check() {
    local stamp node now
    if ! { read -r stamp node <"$file"; } 2>/dev/null || [[ ! $stamp =~ ^[0-9]+$ || -z $node ]]; then
        if waits_for_dns; then
            why="healthy: starting, not up yet (the node is looking for its address in DNS)"
            return 0
        fi
        why="unhealthy: node not up (no heartbeat in $file)"
        return 1
    fi
    printf -v now '%(%s)T' -1
    if ((now - stamp > STALE)); then
        why="unhealthy: $node's last heartbeat is $((now - stamp)) s old (event loop blocked, EPMD registration lost or node gone)"
        return 1
    fi
    if [[ -n $wanted && ${node%%@*} != "$wanted" ]]; then
        why="unhealthy: node $wanted not up; the heartbeat is $node's"
        return 1
    fi
    why="healthy: $node up"
    return 0
}

watch_for() {  # $1: seconds
    local limit=$(($1 * 1000)) waited=0 last=1 healthy step seconds nap
    { read -r last <"$marker"; } 2>/dev/null
    check
    healthy=$?
    if ((healthy == last)); then
        exec {nap}<> <(:)  # an empty pipe for `read -t`: a sleep without a process per look
    fi
    while ((healthy == last)); do
        step=$HEALTHY_STEP
        if ((healthy != 0)); then
            step=$STARTING_STEP
            ((limit = limit < FAILING_WATCH ? limit : FAILING_WATCH))
        fi
        ((waited < limit)) || break
        printf -v seconds '%d.%03d' $((step / 1000)) $((step % 1000))
        read -r -t "$seconds" -u "$nap"
        ((waited += step))
        check
        healthy=$?
    done
    echo "$healthy" 2>/dev/null >"$marker"
    return $healthy
}

case ${1:-} in
    --watch)
        seconds=${2:?--watch needs SECONDS (whole seconds)}
        watch_for "$seconds"
        ;;
    "")
        check
        ;;
    *)
        echo "usage: $0 [--watch SECONDS]" >&2
        exit 2
        ;;
esac
status=$?
echo "$why"
exit $status
