%% A plain gen_server the GenServer interop tests call from Python.
-module(bl_server).
-behaviour(gen_server).
-export([start/1, init/1, handle_call/3, handle_cast/2, handle_info/2]).

start(Name) ->
    {ok, Pid} = gen_server:start({local, Name}, ?MODULE, [], []),
    unlink(Pid),
    Pid.

init([]) -> {ok, []}.

handle_call({echo, X}, _From, S) -> {reply, X, S};
handle_call(history, _From, S) -> {reply, lists:reverse(S), S};
handle_call({sleep, Ms}, _From, S) -> timer:sleep(Ms), {reply, slept, S};
handle_call(crash, _From, _S) -> exit(crashed).

handle_cast(Msg, S) -> {noreply, [{cast, Msg} | S]}.

handle_info(Msg, S) -> {noreply, [{info, Msg} | S]}.
