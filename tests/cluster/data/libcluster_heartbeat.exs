# A libcluster-format gossip peer written from the format description (not libcluster's code):
#   plain:     "heartbeat::" <> :erlang.term_to_binary(%{node: name})
#   encrypted: iv(16) <> AES-256-CBC(key = SHA-256(secret), iv, PKCS#7-padded plain)
# Usage: elixir libcluster_heartbeat.exs LISTEN_PORT PEER_PORT NODE_NAME [SECRET]
# Sends a heartbeat to 127.0.0.1:PEER_PORT every 200 ms until one valid heartbeat arrives, prints
# "HEARD <node>" and exits; prints "BAD <reason>" for datagrams it cannot read.
[listen, peer, name | rest] = System.argv()
secret = List.first(rest)
{:ok, socket} = :gen_udp.open(String.to_integer(listen), [:binary, active: false, ip: {127, 0, 0, 1}])
plain = "heartbeat::" <> :erlang.term_to_binary(%{node: String.to_atom(name)})

seal = fn ->
  case secret do
    nil ->
      plain

    s ->
      key = :crypto.hash(:sha256, s)
      iv = :crypto.strong_rand_bytes(16)
      pad = 16 - rem(byte_size(plain), 16)
      padded = plain <> :binary.copy(<<pad>>, pad)
      iv <> :crypto.crypto_one_time(:aes_256_cbc, key, iv, padded, true)
  end
end

open = fn packet ->
  case secret do
    nil ->
      {:ok, packet}

    s ->
      <<iv::binary-size(16), ct::binary>> = packet
      key = :crypto.hash(:sha256, s)
      padded = :crypto.crypto_one_time(:aes_256_cbc, key, iv, ct, false)
      pad = :binary.last(padded)
      {:ok, binary_part(padded, 0, byte_size(padded) - pad)}
  end
end

loop = fn loop, deadline ->
  if System.monotonic_time(:millisecond) > deadline do
    IO.puts("TIMEOUT")
    System.halt(1)
  end

  :ok = :gen_udp.send(socket, {127, 0, 0, 1}, String.to_integer(peer), seal.())

  case :gen_udp.recv(socket, 0, 200) do
    {:ok, {_ip, _port, packet}} ->
      with {:ok, "heartbeat::" <> term} <- open.(packet),
           %{node: node} when is_atom(node) <- :erlang.binary_to_term(term) do
        IO.puts("HEARD #{node}")
        :gen_udp.send(socket, {127, 0, 0, 1}, String.to_integer(peer), seal.())
      else
        other ->
          IO.puts("BAD #{inspect(other)}")
          loop.(loop, deadline)
      end

    {:error, :timeout} ->
      loop.(loop, deadline)
  end
end

loop.(loop, System.monotonic_time(:millisecond) + 20_000)
