%% The BEAM reference of bench/bench_swarm.py: what a libcluster DNSPoll user runs. Every
%% POLL_MS (5000) ms, and once at start, look up the A records of POLL_QUERY (tasks.<service>),
%% connect NODE_BASENAME@<ip> for each (concurrently, so one dead address costs one connect
%% timeout, not one per address) and disconnect the nodes that vanished from the answer.
-module(dns_poll).
-export([start/0]).

start() ->
    Query = os:getenv("POLL_QUERY"),
    Base = os:getenv("NODE_BASENAME", "app"),
    Interval = list_to_integer(os:getenv("POLL_MS", "5000")),
    spawn(fun() -> loop(Query, Base, Interval, []) end).

loop(Query, Base, Interval, Known) ->
    Wanted = [list_to_atom(Base ++ "@" ++ inet:ntoa(Ip))
              || Ip <- inet_res:lookup(Query, in, a)] -- [node()],
    [erlang:disconnect_node(Node) || Node <- Known -- Wanted],
    Self = self(),
    Pids = [spawn(fun() -> Self ! {self(), net_kernel:connect_node(Node)} end)
            || Node <- Wanted -- nodes()],
    [receive {Pid, _} -> ok end || Pid <- Pids],
    timer:sleep(Interval),
    loop(Query, Base, Interval, Wanted).
