#!/usr/bin/env bash
# cairn's main job, on its embedded default storage (redb in ./cairn-data, or $CAIRN_DATA).
# For now that is the signed merkle-DAG log: this builds the `cairn` command, creates the store
# and an identity if they are missing, writes a small DAG with a fork and a merge, and shows
# it. Every command it runs is printed, so it doubles as a tour of the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p cairn-cli
export CAIRN_DATA=${CAIRN_DATA:-$PWD/cairn-data}
cairn() { echo "\$ cairn $*" >&2; ./target/release/cairn "$@"; }

cairn init
root=$(cairn log append "root: a page about cairns")
left=$(cairn log add --link "$root" "left: stones piled by hikers")
right=$(cairn log add --link "$root" "right: markers on a trail")
echo "a fork: two heads" >&2
cairn log heads
merge=$(cairn log append "merge: stones piled by hikers to mark a trail")
echo "a merge: one head, linking both" >&2
cairn log heads
cairn log get "$merge"
echo "the changes feed (topological order):" >&2
cairn log changes --since "$(( $(./target/release/cairn log changes | wc -l) - 4 ))"
echo "store: $CAIRN_DATA (run again to add more; 'cairn log changes --live' tails it)" >&2
