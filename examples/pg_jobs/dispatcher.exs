# Sends jobs to the Python workers of the pg group :workers (scope :jobs) and prints the
# results. Usage (see README.md):
#   elixir --name dispatcher@127.0.0.1 --cookie secret dispatcher.exs workers@127.0.0.1 [JOBS]
[workers_node | rest] = System.argv()
count = case rest do [n] -> String.to_integer(n); [] -> 10 end

{:ok, _} = :pg.start_link(:jobs)
true = Node.connect(String.to_atom(workers_node))

# The Python scope sends its members when the scopes discover each other; wait for them.
wait = fn wait, tries ->
  case :pg.get_members(:jobs, :workers) do
    [] when tries > 0 -> Process.sleep(100); wait.(wait, tries - 1)
    [] -> raise "no process joined :workers in scope :jobs; is workers.py running?"
    members -> members
  end
end

members = wait.(wait, 100)
IO.puts("#{length(members)} workers: #{inspect(members)}")

jobs = Enum.zip(1..count, Stream.cycle(members))
for {n, worker} <- jobs, do: send(worker, {:job, self(), n, n})

results =
  for _ <- jobs do
    receive do
      {:result, id, value, node} -> {id, value, node}
    after
      5000 -> raise "a job got no result within 5 s"
    end
  end

for {id, value, node} <- Enum.sort(results), do: IO.puts("job #{id}: #{value} from #{node}")
IO.puts("all #{length(results)} results back")
