%% The observer of bench/bench_swarm.py, a hidden node in a container attached to every measured
%% overlay network (the host never connects to a container). For each SERVICE/BASENAME argument,
%% every ROUND_MS it looks up tasks.<service>, asks each listed BASENAME@<ip> for erlang:nodes(), then
%% prints one line: "SNAP <service> <unix ms when the answers were in> <ip>=<node>,... ..."
%% (<ip>=! when the node did not answer within the round).
-module(observer).
-export([start/1]).

-define(ROUND_MS, 100).
-define(CALL_MS, 400).

start(Args) ->
    [spawn(fun() -> loop(Base, Service) end)
     || Arg <- Args, [Service, Base] <- [string:split(Arg, "/")]],
    ok.

loop(Base, Service) ->
    Ips = lists:sort([inet:ntoa(Ip) || Ip <- inet_res:lookup("tasks." ++ Service, in, a)]),
    Nodes = [list_to_atom(Base ++ "@" ++ Ip) || Ip <- Ips],
    Answers = erpc:multicall(Nodes, erlang, nodes, [], ?CALL_MS),
    Now = erlang:system_time(millisecond),
    Fields = [Ip ++ "=" ++ describe(Answer) || {Ip, Answer} <- lists:zip(Ips, Answers)],
    io:format("SNAP ~s ~b ~s~n", [Service, Now, lists:join(" ", Fields)]),
    timer:sleep(?ROUND_MS),
    loop(Base, Service).

describe({ok, Nodes}) -> lists:join(",", lists:sort([atom_to_list(N) || N <- Nodes]));
describe(_) -> "!".
