# Sourced by perf/ scripts: organizations made through a node's API for the writers.
# new_orgs PORT ROOT NAME [N]: N (1) new organizations named "NAME-1", "NAME-2", ...; their
# ids, comma separated (perf/create_key.lua's ORG). An answer without an id stops the script
# with it, rather than sending the writers to a path that 404s.
new_orgs() {
  local ids= i answer id
  for i in $(seq "${4:-1}"); do
    answer=$(curl -s -X POST "localhost:$1/v1/organizations" -H "Authorization: Bearer $2" \
      -d "{\"name\":\"$3-$i\"}")
    id=$(sed -nE 's/.*"data":\{"id":"(org_[^"]+)".*/\1/p' <<< "$answer")
    [ -n "$id" ] || { echo "new_orgs: creating $3-$i on port $1 failed: $answer" >&2; return 1; }
    ids=$ids${ids:+,}$id
  done
  echo "$ids"
}
