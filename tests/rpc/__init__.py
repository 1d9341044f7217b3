"""Tests of RPC and GenServer interop that need no Erlang peer (resolution, terms, messages)."""
