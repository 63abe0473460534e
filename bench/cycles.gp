# cycles.gp: grouped bars of lock+unlock cycles/s per configuration, one bar
# per target, from the data file bench/report writes. Called by compare.sh:
#   gnuplot -e "datafile='cycles.dat'; outfile='cycles.png'; ncols=N" bench/cycles.gp
# (N: the number of tab-separated columns, the first being the label)
set terminal pngcairo size 1100,600 font "sans,10"
set output outfile
set title "acquire+release cycles/s (higher is better), same load generator, same machine"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1:*]
set ylabel "cycles/s (log scale)"
set xlabel "clients and lock names"
set grid ytics
set key outside right top vertical
set datafile separator "\t"
plot for [i=2:ncols] datafile using i:xtic(1) title columnheader(i)
