#!/usr/bin/env bash
# Draws RESULTS/latency.png from a run's histories, as Jepsen's perf graphs
# do: the latency of every completed op, coloured by operation (:f) and
# shaped by outcome (ok, fail, info), and the ok throughput of each operation
# per second, with each fault's interval shaded.
#
#   jepsen/local/plot.sh RESULTS_DIR
set -euo pipefail
dir=$1
cd "$dir"
rm -f plot-*.dat plot-*.unsorted

histories=()
for h in history.edn set-history.edn; do [[ -f $h ]] && histories+=("$h"); done
((${#histories[@]})) || { echo "plot.sh: no history in $dir" >&2; exit 1; }

# Latency: pair each completion with its process's invoke. One file per
# (f, outcome): plot-F-TYPE.dat "START_S LATENCY_MS"; throughput of ok ops
# per f and second: plot-tput-F.dat.
awk '
  /:process :nemesis/ {next}
  {match($0, /:type :[a-z]+/); t = substr($0, RSTART + 7, RLENGTH - 7)
   match($0, /:process [0-9]+/); p = FILENAME substr($0, RSTART + 9, RLENGTH - 9)
   match($0, /:f :[a-z-]+/); f = substr($0, RSTART + 4, RLENGTH - 4)
   match($0, /:time [0-9]+/); tm = substr($0, RSTART + 6, RLENGTH - 6) + 0
   if (t == "invoke") {start[p " " f] = tm; next}
   s = start[p " " f]
   fs[f] = 1
   printf "%.6f %.3f\n", s / 1e9, (tm - s) / 1e6 > ("plot-" f "-" t ".dat")
   if (t == "ok") {sec = int(tm / 1e9); ok[f " " sec]++; if (sec > last) last = sec}}
  END {for (f in fs) {
         out = "plot-tput-" f ".dat"
         for (s = 0; s <= last; s++) print s + 0.5, ok[f " " s] + 0 > out
       }
       for (f in fs) print f > "plot-fs.unsorted"}' "${histories[@]}"
mapfile -t fs < <(sort plot-fs.unsorted)
rm -f plot-fs.unsorted

# Fault intervals from the nemesis events. Faults may overlap (mixed), so
# each kind is paired on its own: start-partition/stop-partition,
# kill/restart, pause/resume.
awk '{match($0, /:f :[a-z-]+/); f = substr($0, RSTART + 4, RLENGTH - 4)
      match($0, /:time [0-9]+/); tm = substr($0, RSTART + 6, RLENGTH - 6) / 1e9
      if (f == "start-partition") ps = tm
      else if (f == "stop-partition" && ps != "") {print ps, tm, "partition"; ps = ""}
      else if (f == "kill") ks = tm
      else if (f == "restart" && ks != "") {print ks, tm, "kill"; ks = ""}
      else if (f == "pause") us = tm
      else if (f == "resume" && us != "") {print us, tm, "pause"; us = ""}}' nemesis.edn >plot-faults.dat

color_of() { # f -> a colour, fixed per operation so that runs compare
  case $1 in
    read) echo '#1f77b4' ;; write) echo '#2ca02c' ;; cas) echo '#9467bd' ;;
    add) echo '#17becf' ;; *) echo '#8c564b' ;;
  esac
}
{
  echo 'set terminal pngcairo size 1400,900 noenhanced'
  echo 'set output "latency.png"'
  echo 'set multiplot layout 2,1 title "Cairn: latency and throughput by operation (shaded: partition red, kill grey, pause blue; o ok, + fail, x info)"'
  n=0
  while read -r s e kind; do
    n=$((n + 1))
    case $kind in
      partition) color='#ff9999' ;;
      kill) color='#bbbbbb' ;;
      *) color='#99bbff' ;;
    esac
    echo "set object $n rect from $s, graph 0 to $e, graph 1 fc rgb '$color' fs solid 0.3 noborder behind"
  done <plot-faults.dat
  echo 'set lmargin 10'
  echo 'set rmargin 14'
  echo 'set xlabel "time (s)"'
  echo 'set ylabel "latency (ms)"'
  echo 'set logscale y'
  echo 'set key outside right top'
  plots=()
  for f in "${fs[@]}"; do
    c=$(color_of "$f")
    [[ -s plot-$f-ok.dat ]] && plots+=("\"plot-$f-ok.dat\" using 1:2 with points pt 7 ps 0.3 lc rgb \"$c\" title \"$f ok\"")
    [[ -s plot-$f-fail.dat ]] && plots+=("\"plot-$f-fail.dat\" using 1:2 with points pt 1 ps 0.8 lc rgb \"$c\" title \"$f fail\"")
    [[ -s plot-$f-info.dat ]] && plots+=("\"plot-$f-info.dat\" using 1:2 with points pt 2 ps 1.2 lw 2 lc rgb \"$c\" title \"$f info\"")
  done
  (IFS=,; echo "plot ${plots[*]}")
  echo 'unset logscale y'
  echo 'set ylabel "ok ops/s"'
  plots=()
  for f in "${fs[@]}"; do
    plots+=("\"plot-tput-$f.dat\" using 1:2 with lines lw 2 lc rgb \"$(color_of "$f")\" title \"$f\"")
  done
  (IFS=,; echo "plot ${plots[*]}")
  echo 'unset multiplot'
} >latency.gnuplot
gnuplot latency.gnuplot
echo "plot: $dir/latency.png"
