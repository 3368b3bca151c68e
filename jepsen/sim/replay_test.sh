#!/bin/sh
# Replay determinism: one seed run twice, in two processes, must write the
# same history byte for byte (jepsen/sim/README.md).
#   replay_test.sh CAIRN_SIM WORKDIR
set -eu
sim=$1
dir=$2
rm -rf "$dir"
mkdir -p "$dir"
for seed in 0x2a 0x5eed 0xdeadbeef; do
    "$sim" --seed "$seed" --out "$dir/a-$seed" >"$dir/a-$seed.log" || true
    "$sim" --seed "$seed" --out "$dir/b-$seed" >"$dir/b-$seed.log" || true
    test -s "$dir/a-$seed/history.edn" || { echo "no history for seed $seed"; exit 1; }
    if ! cmp "$dir/a-$seed/history.edn" "$dir/b-$seed/history.edn"; then
        echo "seed $seed: the two runs wrote different histories"
        exit 1
    fi
    # The verdicts must match except for the checker's own running time.
    for r in a b; do
        sed -E 's/"elapsed_ms":[0-9]+/"elapsed_ms":T/g; s/[0-9]+ ms/T ms/g' \
            "$dir/$r-$seed/check.txt" >"$dir/$r-$seed/check.cmp"
    done
    if ! cmp "$dir/a-$seed/check.cmp" "$dir/b-$seed/check.cmp"; then
        echo "seed $seed: the two runs reached different verdicts"
        exit 1
    fi
done
echo "replay: 3 seeds, identical histories and verdicts"
