# plot.gp — the chart of one bench/run: throughput (top) and latency (bottom) per scenario.
#
#   gnuplot -e "datafile='chart.tsv'; outfile='x.png'; subtitle='...'" bench/plot.gp
#
# chart.tsv (written by bench/run): scenario, throughput/s, p50 ms, p99 ms, p99.9 ms,
# tab-separated. Both axes are logarithmic: FCALL -P16 and a funnel differ by orders
# of magnitude.
set terminal pngcairo size 1400,900 font "DejaVu Sans,10"
set output outfile
set datafile separator "\t"
set multiplot layout 2,1 title "ticketd benchmark\n".subtitle

set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set xtics rotate by -15 nomirror
set logscale y

set title "throughput (per second; flash sale, reserve: 201s only)"
set ylabel "per second"
plot datafile using 2:xtic(1) title "throughput" linecolor rgb "#3b75af", \
     ''       using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle

set title "latency (ms; flash sale, reserve: 201s only; FCALL: p99 for p99.9)"
set key top left
set ylabel "ms"
plot datafile using 3:xtic(1) title "p50" linecolor rgb "#7fb77e", \
     ''       using 4 title "p99" linecolor rgb "#e3a33b", \
     ''       using 5 title "p99.9" linecolor rgb "#c4473b"
unset multiplot
