%% Exact round trip through a Python node: generates thousands of varied terms here, in Erlang,
%% sends each one through rpc:call(PyNode, copy, copy, [T]) and reports every T that does not
%% come back =:= T.
-module(bl_roundtrip).
-export([run/3, edge_terms/0, random_term/1]).

%% Returns {Checked, Mismatches}, Mismatches being [{T, Returned}] (at most 20 kept).
run(PyNode, Count, Seed) ->
    rand:seed(exsss, {Seed, Seed * 7 + 1, Seed * 13 + 2}),
    Terms = edge_terms() ++ [random_term(4) || _ <- lists:seq(1, Count)],
    Bad = lists:foldl(
            fun(T, Acc) ->
                    case rpc:call(PyNode, copy, copy, [T], 30000) of
                        R when R =:= T -> Acc;
                        R -> [{T, R} | Acc]
                    end
            end, [], Terms),
    {length(Terms), lists:sublist(lists:reverse(Bad), 20)}.

edge_terms() ->
    Pid = self(),
    Ref = make_ref(),
    Port = hd(erlang:ports()),
    Y = 42,
    [
     %% atoms
     '', ok, true, false, undefined, nil, 'with space', 'py@127.0.0.1', 'os.path',
     list_to_atom(lists:duplicate(255, $a)), list_to_atom([16#f8]), list_to_atom([26085, 26412]),
     list_to_atom(lists:duplicate(255, 16#1F600)),
     %% integers around every encoding boundary
     0, 1, -1, 255, 256, -256, 2147483647, -2147483648, 2147483648, -2147483649,
     4294967295, 4294967296, 18446744073709551615, 18446744073709551616, -18446744073709551616,
     1 bsl 1000, -(1 bsl 1000), (1 bsl 2040) - 1, 1 bsl 2048, -(1 bsl 2048), 1 bsl 8191,
     %% floats
     0.0, -0.0, 1.5, -1.5, 1.0e308, -1.0e308, 5.0e-324, 2.2250738585072014e-308, 1.0e15, 123456789.125,
     %% binaries and bitstrings
     <<>>, <<0>>, <<0, 1, 255>>, list_to_binary(lists:seq(0, 255)), binary:copy(<<"x">>, 70000),
     <<1:1>>, <<1:3>>, <<255, 7:5>>, <<0:7>>, <<"abc", 5:4>>, <<"é"/utf8>>,
     %% lists and strings
     [], "a", "abc", "hello world", lists:seq(0, 255), [256], [1000, 2000], "日本語", [0],
     lists:seq(1, 70000), [[]], [[], []], [a, [b, [c, []]]], ["abc", <<"abc">>, abc],
     [1 | 2], [a, b | c], [1 | <<>>], [[] | []], [1, 2 | {}], ["x" | "y"], [a | #{}],
     [{} | 1.5], [1 | -0.0],
     %% tuples
     {}, {a}, {a, b}, {1, {2, {3, {}}}}, list_to_tuple(lists:seq(1, 255)), list_to_tuple(lists:seq(1, 256)),
     list_to_tuple(lists:seq(1, 1000)),
     %% maps
     #{}, #{a => 1}, #{1 => a, 1.0 => b}, #{0.0 => z, -0.0 => y}, #{{a, b} => [c]}, #{[1, 2] => x},
     #{#{k => v} => map_key}, #{<<"bin">> => 1, "str" => 2, str => 3}, #{[] => [], {} => {}},
     maps:from_list([{I, I * I} || I <- lists:seq(1, 100)]),
     maps:from_list([{integer_to_binary(I), [I]} || I <- lists:seq(1, 40)]),
     #{true => 1, 1 => true}, #{Pid => Ref, Ref => Pid},
     %% pids, references, ports, funs
     Pid, Ref, make_ref(), alias(), Port, whereis(init), list_to_pid("<0.0.0>"),
     fun() -> ok end, fun(X) -> X + Y end, fun lists:map/2, fun erlang:node/0,
     fun(A, B) -> {A, B, Pid, Ref} end,
     %% nesting
     [{Pid, [Ref | Port]}, #{k => [fun() -> Y end]}],
     nest(200)
    ].

nest(0) -> [];
nest(N) -> [nest(N - 1)].

random_term(0) -> leaf();
random_term(Depth) ->
    case rand:uniform(9) of
        1 -> list_to_tuple([random_term(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        2 -> [random_term(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)];
        3 -> maps:from_list([{random_term(Depth - 1), random_term(Depth - 1)}
                             || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        4 -> [random_term(Depth - 1) | leaf()];
        _ -> leaf()
    end.

leaf() ->
    case rand:uniform(16) of
        1 -> rand:uniform(256) - 129;
        2 -> rand:uniform(1 bsl 70) - (1 bsl 69);
        3 -> (rand:uniform(1 bsl 40) - (1 bsl 39)) * (1 bsl (rand:uniform(400)));
        4 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300);
        5 -> list_to_atom([rand:uniform(26) + 96 || _ <- lists:seq(1, rand:uniform(12))]);
        6 -> list_to_atom([rand:uniform(16#2FFF) || _ <- lists:seq(1, rand:uniform(6))]);
        7 -> rand:bytes(rand:uniform(40) - 1);
        8 -> <<(rand:uniform(255)):(rand:uniform(7))>>;
        9 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(20))];
        10 -> [rand:uniform(16#10FFFF) || _ <- lists:seq(1, rand:uniform(8))];
        11 -> make_ref();
        12 -> self();
        13 -> lists:nth(rand:uniform(5), [ok, error, true, false, undefined]);
        14 -> unicode:characters_to_binary([rand:uniform(16#D7FF) || _ <- lists:seq(1, rand:uniform(8))]);
        15 -> [];
        16 -> float(rand:uniform(100000))
    end.
