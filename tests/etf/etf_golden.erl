%% Golden data for beamlink's ETF codec, produced and checked by a real Erlang node.
%%
%% generate(File): writes term_to_binary of a few thousand varied terms as records
%%   <<Kind:8, Len:32, Bin:Len/binary>>, Kind 0 = canonical encoding (minor_version 2, the
%%   OTP 26+ default), 1 = another valid encoding of the same term (old tags), 2 = compressed.
%% check_roundtrip(Orig, Resp, Out): Resp holds <<Len:32, Bin>> per record of Orig (beamlink's
%%   re-encoding); writes to Out one line per record whose binary_to_term is not =:= the original.
%% check_encoded(In, Out): In holds <<TLen:32, Text, BLen:32, Bin, Exact:8>> records: an Erlang
%%   expression and beamlink's encoding of the same value; writes one line per mismatch
%%   (binary_to_term not =:= the value, or, when Exact is 1, bytes differing from term_to_binary).
-module(etf_golden).
-export([generate/1, check_roundtrip/3, check_encoded/2]).

-define(CANONICAL, [{minor_version, 2}]).

generate(File) ->
    rand:seed(exsss, {7, 11, 13}),
    Canonical = [{0, term_to_binary(T, ?CANONICAL)} || T <- fixed_terms() ++ random_terms(2500)],
    %% OTP 26 started writing ports as V4_PORT_EXT; OTP 25 writes NEW_PORT_EXT.
    PortKind = case list_to_integer(erlang:system_info(otp_release)) of R when R >= 26 -> 0; _ -> 1 end,
    Ports = [{PortKind, term_to_binary(T, ?CANONICAL)} || T <- port_terms()],
    Old = [{1, B} || B <- old_encodings(), is_tuple(safe_b2t(B)), element(1, safe_b2t(B)) =:= ok],
    Compressed = [{2, B} || T <- compressible_terms(),
                            B <- [term_to_binary(T, [{compressed, 6} | ?CANONICAL])],
                            binary:at(B, 1) =:= 80],
    ok = file:write_file(File, [<<K:8, (byte_size(B)):32, B/binary>>
                                || {K, B} <- Canonical ++ Ports ++ Old ++ Compressed]).

check_roundtrip(OrigFile, RespFile, OutFile) ->
    {ok, Orig} = file:read_file(OrigFile),
    {ok, Resp} = file:read_file(RespFile),
    Pairs = lists:zip([B || {_, B} <- orig_records(Orig)], resp_records(Resp)),
    Bad = [io_lib:format("~b: ~w =/= ~w~n", [I, safe_b2t(R), binary_to_term(O)])
           || {I, {O, R}} <- lists:zip(lists:seq(0, length(Pairs) - 1), Pairs),
              not same(safe_b2t(R), binary_to_term(O))],
    write_report(OutFile, length(Pairs), Bad).

check_encoded(InFile, OutFile) ->
    {ok, In} = file:read_file(InFile),
    Records = encoded_records(In),
    Bad = lists:append([check_one(I, R) || {I, R} <- lists:zip(lists:seq(0, length(Records) - 1), Records)]),
    write_report(OutFile, length(Records), Bad).

write_report(File, Count, Bad) ->
    Text = [io_lib:format("checked ~b~n", [Count]) | Bad],
    ok = file:write_file(File, unicode:characters_to_binary(Text)).

check_one(I, {Text, Bin, Exact}) ->
    Value = eval(Text),
    Decoded = safe_b2t(Bin),
    Expected = term_to_binary(Value, ?CANONICAL),
    if
        not is_tuple(Decoded); element(1, Decoded) =/= ok -> [io_lib:format("~b: binary_to_term failed for ~ts~n", [I, Text])];
        element(2, Decoded) =/= Value -> [io_lib:format("~b: ~w =/= ~ts~n", [I, element(2, Decoded), Text])];
        Exact =:= 1, Bin =/= Expected -> [io_lib:format("~b: bytes ~w =/= term_to_binary ~w for ~ts~n", [I, Bin, Expected, Text])];
        true -> []
    end.

same({ok, A}, B) -> A =:= B;
same(_, _) -> false.

safe_b2t(Bin) ->
    try {ok, binary_to_term(Bin)} catch C:E -> {C, E} end.

eval(Text) ->
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Text) ++ "."),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    {value, V, _} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
    V.

orig_records(<<K:8, L:32, B:L/binary, Rest/binary>>) -> [{K, B} | orig_records(Rest)];
orig_records(<<>>) -> [].

resp_records(<<L:32, B:L/binary, Rest/binary>>) -> [B | resp_records(Rest)];
resp_records(<<>>) -> [].

encoded_records(<<TL:32, T:TL/binary, BL:32, B:BL/binary, E:8, Rest/binary>>) ->
    [{T, B, E} | encoded_records(Rest)];
encoded_records(<<>>) -> [].

%% --- terms -----------------------------------------------------------------------------------

edge_integers() ->
    Bases = [0, 1, 255, 256, 1 bsl 27, 1 bsl 31, 1 bsl 32, 1 bsl 63, 1 bsl 64,
             1 bsl (8 * 255), 1 bsl 2040, 1 bsl 4000],
    Around = lists:usort([X + D || B <- Bases, X <- [B, -B], D <- [-1, 0, 1]]),
    Around ++ [pow(3, 5000), -pow(7, 3000), 12345678901234567890123456789].

pow(_, 0) -> 1;
pow(B, E) -> B * pow(B, E - 1).

fixed_terms() ->
    Self = self(),
    Y = 42,
    RemotePid = binary_to_term(<<131, 88, 119, 9, "py@host.x", 1:32, 2:32, 3210987:32>>),
    RemoteRef = binary_to_term(<<131, 90, 0:8, 3:8, 119, 3, "a@b", 7:32, 1:32, 2:32, 3:32>>),
    Funs = [fun() -> ok end, fun(X) -> X + Y end, fun(A, B) -> {A, B, Self, [Y]} end,
            fun lists:map/2, fun erlang:'+'/2, fun 'Elixir.Foo':bar/0],
    edge_integers()
        ++ [0.0, -0.0, 1.0, -1.5, 1.0e308, -1.0e308, 5.0e-324, 2.2250738585072014e-308,
            math:pi(), 1.0e15, 123456789.125]
        ++ ['', a, 'hello world', 'ÿ', 'π', '日本語', 'Elixir.Foo.Bar', true, false, undefined,
            nil, list_to_atom(lists:duplicate(255, $a)), list_to_atom(lists:duplicate(255, $é)),
            list_to_atom(lists:duplicate(100, 16#1F600))]
        ++ [<<>>, <<"abc">>, <<0:8000>>, binary:copy(<<"xyz">>, 30000),
            <<1:1>>, <<7:3>>, <<1, 2, 3:5>>, <<255:7>>, <<0:1>>]
        ++ [{}, {a}, {a, {b, {c}}}, list_to_tuple(lists:seq(1, 300)),
            [], "abc", [1, 2, 300], [a | b], [1, 2 | <<>>], [[]], "é", [256], [-1],
            lists:duplicate(65535, $x), lists:duplicate(65536, $x), lists:seq(1, 1000),
            [[a | b] | c], [{}, [], #{}, <<>>]]
        ++ [#{}, #{a => 1}, #{1 => a, 1.0 => b}, #{true => x, 1 => y, 1.0 => z},
            #{0.0 => a, -0.0 => b}, #{[1, 2] => x, [a] => y, #{a => 1} => z, {[a], #{}} => w},
            #{{1, 2} => [3], <<"k">> => #{nested => true}},
            maps:from_list([{I, I * I} || I <- lists:seq(1, 32)]),
            maps:from_list([{I, I * I} || I <- lists:seq(1, 33)]),
            maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 100)])]
        ++ [Self, spawn(fun() -> ok end), RemotePid, make_ref(), erlang:monitor(process, Self),
            alias(), RemoteRef, {Self, make_ref()}, #{Self => RemoteRef}]
        ++ Funs ++ [{Funs}]
        ++ [nest_tuple(200), nest_list(200), nest_map(100)].

port_terms() ->
    Port = hd(erlang:ports()),
    [Port, {Port, self()},
     binary_to_term(<<131, 89, 119, 3, "a@b", 77:32, 5:32>>),
     binary_to_term(<<131, 120, 119, 3, "a@b", (1 bsl 40 + 3):64, 5:32>>)].

nest_tuple(0) -> leaf;
nest_tuple(N) -> {N, nest_tuple(N - 1)}.

nest_list(0) -> [];
nest_list(N) -> [nest_list(N - 1)].

nest_map(0) -> #{};
nest_map(N) -> #{N => nest_map(N - 1)}.

compressible_terms() ->
    [lists:duplicate(100, hello), binary:copy(<<"abcdef">>, 1000), lists:seq(1, 2000),
     maps:from_list([{I, <<"value">>} || I <- lists:seq(1, 200)]), <<"short">>, {a, b}].

random_terms(N) -> [random_term(3) || _ <- lists:seq(1, N)].

random_term(Depth) ->
    Kinds = case Depth of 0 -> 7; _ -> 11 end,
    case rand:uniform(Kinds) of
        1 -> rand:uniform(1 bsl (rand:uniform(80))) - (1 bsl 40);
        2 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(40) - 20);
        3 -> list_to_atom(random_chars(rand:uniform(12) - 1));
        4 -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(20) - 1)]);
        5 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(10) - 1)];
        6 -> <<(rand:uniform(127)):(rand:uniform(7))>>;
        7 -> unicode:characters_to_binary(random_chars(rand:uniform(8)));
        8 -> list_to_tuple(random_terms_at(Depth - 1));
        9 -> random_terms_at(Depth - 1);
        10 -> maps:from_list([{random_term(Depth - 1), random_term(Depth - 1)}
                              || _ <- lists:seq(1, rand:uniform(6) - 1)]);
        11 -> case random_terms_at(Depth - 1) of [] -> [x | y]; L -> L ++ random_term(0) end
    end.

random_terms_at(Depth) -> [random_term(Depth) || _ <- lists:seq(1, rand:uniform(5) - 1)].

random_chars(N) ->
    Alphabet = "abcXYZ_@.019 éπ日😀",
    [lists:nth(rand:uniform(length(Alphabet)), Alphabet) || _ <- lists:seq(1, N)].

%% Valid encodings that are not the canonical one: old tags OTP still accepts (and OTP 25 writes).
old_encodings() ->
    Node = <<100, 3:16, "a@b">>,
    Samples = [1.5, -0.0, 1.0e300, abc, 'ÿ', {true, false}, #{a => "x"}],
    [term_to_binary(T, [{minor_version, 0}]) || T <- Samples]
        ++ [term_to_binary(T, [{minor_version, 1}]) || T <- Samples]
        ++ [<<131, 103, Node/binary, 1:32, 2:32, 3:8>>,                 % PID_EXT
            <<131, 101, Node/binary, 9:32, 2:8>>,                        % REFERENCE_EXT
            <<131, 114, 2:16, Node/binary, 1:8, 5:32, 6:32>>,            % NEW_REFERENCE_EXT
            <<131, 102, Node/binary, 9:32, 1:8>>,                        % PORT_EXT
            <<131, 115, 3, "abc">>,                                      % SMALL_ATOM_EXT
            <<131, 100, 4:16, "true">>,                                  % ATOM_EXT true
            <<131, 108, 2:32, 97, 1, 97, 2, 106>>,                       % bytes as LIST_EXT
            <<131, 108, 1:32, 97, 1, 107, 2:16, "ab">>,                  % list tail is a string
            <<131, 108, 1:32, 97, 1, 108, 1:32, 97, 2, 100, 1:16, "t">>, % tail is improper list
            <<131, 110, 1, 0, 5>>,                                       % SMALL_BIG_EXT 5
            <<131, 111, 1:32, 1, 5>>,                                    % LARGE_BIG_EXT -5
            <<131, 98, 7:32>>,                                           % INTEGER_EXT 7
            <<131, 105, 2:32, 97, 1, 97, 2>>,                            % LARGE_TUPLE_EXT {1,2}
            <<131, 77, 1:32, 8, 200>>,                                   % BIT_BINARY_EXT, 8 bits
            <<131, 77, 0:32, 0>>,                                        % empty BIT_BINARY_EXT
            <<131, 107, 0:16>>].                                         % empty STRING_EXT
