#!/usr/bin/env bash
# Draws RESULTS/latency.png from a run's histories: the latency of every
# completed op (by outcome: ok, fail, info) and the throughput of ok ops per
# second, with each fault's interval shaded, as Jepsen's perf graphs do.
#
#   jepsen/local/plot.sh RESULTS_DIR
set -euo pipefail
dir=$1
cd "$dir"

# Latency: pair each completion with its process's invoke.
cat history.edn set-history.edn | awk '
  /:process :nemesis/ {next}
  {match($0, /:type :[a-z]+/); t = substr($0, RSTART + 7, RLENGTH - 7)
   match($0, /:process [0-9]+/); p = substr($0, RSTART + 9, RLENGTH - 9)
   match($0, /:f :[a-z]+/); f = substr($0, RSTART + 4, RLENGTH - 4)
   match($0, /:time [0-9]+/); tm = substr($0, RSTART + 6, RLENGTH - 6) + 0
   k = FILENAME p
   if (t == "invoke") {start[p " " f] = tm; next}
   s = start[p " " f]
   printf "%.6f %.3f\n", s / 1e9, (tm - s) / 1e6 > ("plot-" t ".dat")
   if (t == "ok") ok[int(tm / 1e9)]++}
  END {for (s in ok) if (s + 0 > last) last = s + 0
       for (s = 0; s <= last; s++) print s + 0.5, ok[s] + 0 > "plot-tput.unsorted"}'
touch plot-ok.dat plot-fail.dat plot-info.dat plot-tput.unsorted
sort -n plot-tput.unsorted >plot-tput.dat
rm -f plot-tput.unsorted

# Fault intervals, from the nemesis events (one fault at a time).
awk '{match($0, /:f :[a-z-]+/); f = substr($0, RSTART + 4, RLENGTH - 4)
      match($0, /:time [0-9]+/); tm = substr($0, RSTART + 6, RLENGTH - 6) / 1e9
      if (f == "start-partition" || f == "kill" || f == "pause") {s = tm; kind = f}
      else if (s != "") {print s, tm, kind; s = ""}}' nemesis.edn >plot-faults.dat

{
  echo 'set terminal pngcairo size 1400,900 noenhanced'
  echo 'set output "latency.png"'
  echo 'set multiplot layout 2,1 title "Cairn: latency and throughput (shaded: partition red, kill grey, pause blue)"'
  n=0
  while read -r s e kind; do
    n=$((n + 1))
    case $kind in
      start-partition) color='#ff9999' ;;
      kill) color='#bbbbbb' ;;
      *) color='#99bbff' ;;
    esac
    echo "set object $n rect from $s, graph 0 to $e, graph 1 fc rgb '$color' fs solid 0.35 noborder behind"
  done <plot-faults.dat
  echo 'set lmargin 10'
  echo 'set rmargin 12'
  echo 'set xlabel "time (s)"'
  echo 'set ylabel "latency (ms)"'
  echo 'set logscale y'
  echo 'set key top right opaque'
  echo 'plot "plot-ok.dat" using 1:2 with points pt 7 ps 0.3 lc rgb "#2a9d2a" title "ok", \'
  echo '     "plot-fail.dat" using 1:2 with points pt 7 ps 0.5 lc rgb "#d62728" title "fail", \'
  echo '     "plot-info.dat" using 1:2 with points pt 7 ps 0.7 lc rgb "#ff9f1c" title "info"'
  echo 'unset logscale y'
  echo 'set ylabel "ok ops/s"'
  echo 'plot "plot-tput.dat" using 1:2 with lines lw 2 lc rgb "#1f77b4" title "throughput"'
  echo 'unset multiplot'
} >latency.gnuplot
gnuplot latency.gnuplot
echo "plot: $dir/latency.png"
