#!/bin/sh
# Entry point of the BEAM reference image: node app@<task address> (as `hostname -i` gives it,
# the usual release env.sh recipe), cookie from the swarm secret, dns_poll.erl running.
set -eu
ip=$(hostname -i | cut -d' ' -f1)
exec erl -noshell -name "${NODE_BASENAME:-app}@$ip" -setcookie "$(cat /run/secrets/cookie)" \
    -pa /opt/ref -s dns_poll
