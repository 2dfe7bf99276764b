# Shared by the bench scripts (sourced). wait_merges LOG DIR [STABLE]: waits until no merge is
# running and the number of Parquet files under DIR has not changed for STABLE seconds (default
# 5; more than --compaction-interval when the server runs with its default of 30 s, or the wait
# ends between two rounds of merges), at most 600 s more than that, as a running server's merges
# settle; leaves the file count in $files.
wait_merges() {
  local log="$1" dir="$2" stable="${3:-5}" last="" same=0 started ended state
  for _ in $(seq $((600 + stable))); do
    files=$(find "$dir" -name '*.parquet' | wc -l)
    started=$(grep -c "compacting a partition" "$log" || true)
    ended=$(grep -c "compacted a partition\|compaction failed" "$log" || true)
    state="$files/$started/$ended"
    if [ "$state" = "$last" ] && [ "$started" = "$ended" ]; then same=$((same + 1)); else same=0; last="$state"; fi
    [ "$same" -ge "$stable" ] && return 0
    sleep 1
  done
}

# table_of SIGNAL: the lake table a signal's records land in (traces → spans); exits on others.
table_of() {
  case "$1" in
    traces) echo spans ;;
    logs | metrics) echo "$1" ;;
    *) echo "unknown signal $1" >&2; exit 2 ;;
  esac
}
