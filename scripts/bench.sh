#!/usr/bin/env bash
# Runs every benchmark scenario against a release build and rewrites
# docs/BENCHMARKS.md with the machine, the date, each scenario's command and
# its measured tables.
#
#   scripts/bench.sh            full runs (fan-out and storm step up until
#                               something breaks; takes 10–20 minutes)
#   scripts/bench.sh --quick    the small variants (about 2 minutes)
#   scripts/bench.sh --only append,backfill
#                               just those scenarios (names as in the lists
#                               below); their sections of the existing file
#                               are replaced (or added at its end) and every
#                               other section is kept as it is
#
# The machine is usually shared: every figure is a distribution from one
# run, printed with the load average at its start. Hand-written notes
# between the `notes:begin` / `notes:end` markers of the existing file are
# kept across runs. Each scenario's section sits between
# `<!-- scenario:NAME -->` and `<!-- /scenario:NAME -->` markers, which is
# how --only finds it.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=()
ONLY=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=(--quick) ;;
        --only)
            [[ $# -ge 2 ]] || { echo "bench.sh: --only needs a list of names" >&2; exit 2; }
            ONLY=$2
            shift
            ;;
        --only=*) ONLY=${1#--only=} ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --bins
BENCH=target/release/bench
OUT=docs/BENCHMARKS.md
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# scenario-name bench-arguments...
SCENARIOS=(
    "commit|commit-to-client"
    "commit-sparse|commit-to-client --gap 20-40 --commits 500"
    "fanout|fanout"
    "fanout-max|fanout --max"
    "fanout-capacity|fanout --max --rate 1 --steps 2000,4000,6000,7000,8000"
    "idle|idle"
    "stats|stats"
    "storm|storm --max"
    "append|append-to-client"
    "backfill|backfill"
)
if [[ ${#QUICK[@]} -gt 0 ]]; then
    SCENARIOS=(
        "commit|commit-to-client"
        "commit-sparse|commit-to-client --gap 20-40 --commits 150"
        "fanout|fanout"
        "fanout-max|fanout --max --steps 500,1000"
        "fanout-capacity|fanout --max --rate 1 --steps 1000,2000"
        "idle|idle"
        "stats|stats"
        "storm|storm"
        "append|append-to-client"
        "backfill|backfill"
    )
fi

if [[ -n $ONLY ]]; then
    known=" ${SCENARIOS[*]%%|*} "
    selected=()
    IFS=',' read -r -a wanted <<< "$ONLY"
    for name in "${wanted[@]}"; do
        if [[ $known != *" $name "* ]]; then
            echo "bench.sh: no scenario named $name (known:$known)" >&2
            exit 2
        fi
    done
    for entry in "${SCENARIOS[@]}"; do
        [[ ",$ONLY," == *",${entry%%|*},"* ]] && selected+=("$entry")
    done
    SCENARIOS=("${selected[@]}")
    if [[ ! -f $OUT ]]; then
        echo "bench.sh: --only keeps the other sections of $OUT, which does not exist; run without --only first" >&2
        exit 2
    fi
fi

failed=0
for entry in "${SCENARIOS[@]}"; do
    name=${entry%%|*}
    read -r -a args <<< "${entry#*|}"
    echo "== bench ${args[*]} ${QUICK[*]:-}" >&2
    if ! "$BENCH" "${args[@]}" "${QUICK[@]}" > "$WORK/$name.md" 2> "$WORK/$name.log"; then
        failed=$((failed + 1))
        {
            echo "### ${args[*]}: the scenario failed"
            echo
            echo '```'
            tail -n 20 "$WORK/$name.log"
            echo '```'
        } > "$WORK/$name.md"
    fi
    cat "$WORK/$name.md"
    # The section as it goes into the file, between its markers.
    {
        echo "<!-- scenario:$name -->"
        if [[ -n $ONLY ]]; then
            echo "_Re-run on $(date -u '+%Y-%m-%d %H:%M UTC') with \`scripts/bench.sh --only $ONLY${QUICK[*]:+ ${QUICK[*]}}\`;"
            echo "the sections without this line are from the full run above._"
            echo
        fi
        cat "$WORK/$name.md"
        echo "<!-- /scenario:$name -->"
    } > "$WORK/$name.section"
done

if [[ -n $ONLY ]]; then
    # Replace each re-run section in place; add the ones the file lacks at
    # its end (the measurements are the last part of the file).
    awk -v work="$WORK" -v names="$ONLY" '
        BEGIN { n = split(names, list, ","); for (i = 1; i <= n; i++) want[list[i]] = 1 }
        function emit(name,    line, f) {
            f = work "/" name ".section"
            while ((getline line < f) > 0) print line
            close(f)
            done[name] = 1
        }
        skipping != "" { if ($0 == "<!-- /scenario:" skipping " -->") skipping = ""; next }
        /^<!-- scenario:[A-Za-z0-9_-]+ -->$/ {
            name = substr($0, 15, length($0) - 18)
            if (name in want) { emit(name); skipping = name; next }
        }
        { print }
        END { for (i = 1; i <= n; i++) if (!(list[i] in done)) { print ""; emit(list[i]) } }
    ' "$OUT" > "$WORK/out.md"
    mv "$WORK/out.md" "$OUT"
    echo "bench.sh: replaced the sections $ONLY of $OUT ($failed scenario(s) failed)" >&2
    exit 0
fi

notes=""
if [[ -f $OUT ]]; then
    notes=$(sed -n '/<!-- notes:begin -->/,/<!-- notes:end -->/p' "$OUT")
fi
if [[ -z $notes ]]; then
    notes=$'<!-- notes:begin -->\n(No notes yet.)\n<!-- notes:end -->'
fi

{
    echo "# Benchmarks"
    echo
    invocation="scripts/bench.sh${QUICK[*]:+ ${QUICK[*]}}"
    echo "Generated by \`$invocation\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Every table is"
    echo "one run of \`target/release/bench\` (source: \`src/bin/bench/\`) against the release daemon,"
    echo "all traffic on 127.0.0.1; each block starts with the exact command that produced it."
    echo "The machine is shared with other builds, so read the figures as distributions from a"
    echo "noisy host (the 1-minute load average at the start of each scenario is printed with it)."
    echo
    echo "## Machine"
    echo
    echo '```'
    echo "\$ nproc"
    nproc
    echo "\$ free -g"
    free -g
    echo "\$ uname -sr"
    uname -sr
    echo "\$ rustc --version"
    rustc --version
    echo "\$ ulimit -n (soft / hard)"
    echo "$(ulimit -Sn) / $(ulimit -Hn)"
    echo "\$ cat /proc/sys/vm/max_map_count /proc/sys/net/core/somaxconn"
    cat /proc/sys/vm/max_map_count /proc/sys/net/core/somaxconn
    echo '```'
    echo
    echo "## Findings"
    echo
    echo "$notes"
    echo
    echo "## Measurements"
    echo
    for entry in "${SCENARIOS[@]}"; do
        cat "$WORK/${entry%%|*}.section"
        echo
    done
} > "$OUT"

echo "bench.sh: wrote $OUT ($failed scenario(s) failed)" >&2
