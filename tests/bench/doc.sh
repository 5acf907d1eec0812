# Sourced by the bench scripts: doc_append_table TITLE HEADER ROWS appends one result table,
# with its title and header, to docs/performance.md (a log of runs: every table stands alone,
# so runs of different kinds never land under each other's header). HEADER is the column
# names separated by " | "; ROWS is table rows, one per line. Nothing when BENCH_NO_DOC=1.
doc_append_table() {
    [ "${BENCH_NO_DOC:-0}" != 1 ] || return 0
    doc=$repo/docs/performance.md
    [ -f "$doc" ] || fail "$doc is missing"
    {
        echo
        echo "$1"
        echo
        echo "| $2 |"
        echo "| $2 |" | sed 's/[^|][^|]*/ --- /g'
        printf '%s\n' "$3" | sed '/^$/d'
    } >>"$doc"
    echo "bench: appended to docs/performance.md: $1"
}
