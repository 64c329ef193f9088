// The panels' own script: draws the uPlot charts whose data the page carries in
// <script type="application/json"> blocks. No inline script anywhere (the CSP forbids it).
(function () {
  "use strict";

  function drawCharts(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var source = document.getElementById(el.dataset.chart);
      if (!source) return;
      var spec = JSON.parse(source.textContent);
      var series = [{}].concat(spec.series.map(function (s) {
        return { label: s[0], stroke: s[1], width: 2 };
      }));
      var width = Math.max(320, el.clientWidth || 640);
      new uPlot({ width: width, height: 260, series: series,
                  axes: [{}, { size: 60 }], scales: { x: { time: true } } },
                [spec.x].concat(spec.values), el);
      el.dataset.drawn = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:after:swap", function (event) { drawCharts(document); });
})();
