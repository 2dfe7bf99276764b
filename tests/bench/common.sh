# Shared by the bench scripts (sourced). wait_merges LOG DIR: waits until no merge is running
# and the number of Parquet files under DIR has not changed for 5 s (at most 600 s), as a
# running server's merges settle; leaves the file count in $files.
wait_merges() {
  local log="$1" dir="$2" last="" same=0 started ended state
  for _ in $(seq 600); do
    files=$(find "$dir" -name '*.parquet' | wc -l)
    started=$(grep -c "compacting a partition" "$log" || true)
    ended=$(grep -c "compacted a partition\|compaction failed" "$log" || true)
    state="$files/$started/$ended"
    if [ "$state" = "$last" ] && [ "$started" = "$ended" ]; then same=$((same + 1)); else same=0; last="$state"; fi
    [ "$same" -ge 5 ] && return 0
    sleep 1
  done
}
