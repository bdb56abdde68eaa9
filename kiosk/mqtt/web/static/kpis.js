// The KPI page's charts, drawn with uPlot from the figures embedded in the page.
(function () {
  const source = document.getElementById("kpi-data");
  const period = document.getElementById("period");
  const last = document.getElementById("last-label");
  function showLast() { if (last && period) last.hidden = period.value !== "range"; }
  if (period) { period.addEventListener("change", showLast); showLast(); }
  if (!source || typeof uPlot === "undefined") return;
  const data = JSON.parse(source.textContent);
  const width = function (el) { return Math.max(280, el.clientWidth - 10); };
  const bars = uPlot.paths.bars({ size: [0.6, 60] });

  const daily = document.getElementById("chart-daily");
  if (daily && data.daily.length) {
    const xs = data.daily.map(function (d) { return Date.parse(d.day + "T12:00:00") / 1000; });
    new uPlot({
      width: width(daily), height: 240,
      series: [{}, { label: "Revenue", stroke: "#1565c0", fill: "rgba(21,101,192,.25)", paths: bars, scale: "money" },
               { label: "Sales", stroke: "#e65100", width: 2, scale: "count" }],
      axes: [{}, { scale: "money", label: "Revenue" }, { scale: "count", side: 1, label: "Sales", grid: { show: false } }],
      scales: { x: { time: true, range: function () { return [xs[0] - 43200, xs[xs.length - 1] + 43200]; } }, money: { range: function (u, a, b) { return [0, Math.max(b, 1) * 1.1]; } },
                count: { range: function (u, a, b) { return [0, Math.max(b, 1) * 1.1]; } } },
    }, [xs, data.daily.map(function (d) { return Number(d.revenue); }), data.daily.map(function (d) { return d.transactions; })], daily);
  }

  const kiosks = document.getElementById("chart-kiosks");
  const names = Object.keys(data.kiosks);
  if (kiosks && names.length) {
    new uPlot({
      width: width(kiosks), height: 240,
      series: [{ label: "Kiosk", value: function (u, i) { return i == null ? "" : names[i]; } },
               { label: "Revenue", stroke: "#2e7d32", fill: "rgba(46,125,50,.3)", paths: bars }],
      scales: { x: { time: false, range: function () { return [-0.5, names.length - 0.5]; } },
                y: { range: function (u, a, b) { return [0, Math.max(b, 1) * 1.1]; } } },
      axes: [{ splits: function () { return names.map(function (_, i) { return i; }); },
               values: function (u, splits) { return splits.map(function (i) { return names[i] || ""; }); } }, {}],
    }, [names.map(function (_, i) { return i; }), names.map(function (n) { return Number(data.kiosks[n].revenue); })], kiosks);
  }
})();
