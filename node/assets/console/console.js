// tallytree console: draws each page's charts from the JSON the page
// carries next to each chart (the same figures as the table below it),
// makes table rows with a link clickable, and keeps print views still.
(function () {
  "use strict";
  var script = document.currentScript;
  var lang = script && script.getAttribute("data-lang") === "en" ? "EN" : "ZH";
  var still = document.body.getAttribute("data-print") === "true" || navigator.webdriver === true;
  var charts = [];
  window.tallytreeCharts = { drawn: 0, expected: 0 };

  function percentAxis(series) {
    for (var i = 0; i < series.length; i++) { if (series[i].percent) { return true; } }
    return false;
  }

  function option(spec) {
    var hasPercent = percentAxis(spec.series);
    var onlyPercent = spec.series.every(function (s) { return s.percent; });
    var yAxis = [{ type: "value", minInterval: 1 }];
    if (hasPercent && !onlyPercent) {
      yAxis.push({ type: "value", max: 100, axisLabel: { formatter: "{value}%" } });
    }
    if (onlyPercent) { yAxis = [{ type: "value", max: 100, axisLabel: { formatter: "{value}%" } }]; }
    var horizontal = spec.kind === "ranking";
    var series = spec.series.map(function (s) {
      return {
        name: s.name, type: s.type, data: s.data,
        yAxisIndex: (!horizontal && s.percent && !onlyPercent) ? 1 : undefined,
        smooth: false, connectNulls: false
      };
    });
    var category = { type: "category", data: spec.x, axisLabel: { interval: 0, rotate: horizontal ? 0 : (spec.x.length > 8 ? 30 : 0) } };
    return {
      animation: !still,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: horizontal ? 110 : 50, right: 50, top: 36, bottom: 50, containLabel: false },
      xAxis: horizontal ? yAxis[0] : category,
      yAxis: horizontal ? Object.assign(category, { inverse: true }) : yAxis,
      series: series
    };
  }

  function draw() {
    var specs = document.querySelectorAll("script.chart-spec");
    window.tallytreeCharts.expected = specs.length;
    if (typeof echarts === "undefined") { return; }
    for (var i = 0; i < specs.length; i++) {
      var el = document.getElementById(specs[i].getAttribute("data-target"));
      if (!el) { continue; }
      var spec = JSON.parse(specs[i].textContent);
      if (spec.kind === "ranking") {
        el.style.height = Math.max(240, spec.x.length * 26 + 80) + "px";
      }
      var chart = echarts.init(el, null, { renderer: "svg", locale: lang });
      chart.on("finished", function () { window.tallytreeCharts.drawn += 1; });
      chart.setOption(option(spec));
      charts.push(chart);
    }
  }

  function rows() {
    var trs = document.querySelectorAll("tr[data-href]");
    for (var i = 0; i < trs.length; i++) {
      trs[i].addEventListener("click", function (e) {
        if (e.target.tagName === "A") { return; }
        window.location.href = this.getAttribute("data-href");
      });
    }
  }

  function printLinks() {
    var links = document.querySelectorAll("a.print");
    for (var i = 0; i < links.length; i++) {
      links[i].addEventListener("click", function (e) {
        if (document.body.getAttribute("data-print") === "true") { e.preventDefault(); window.print(); }
      });
    }
    if (document.body.getAttribute("data-print") === "true" && !navigator.webdriver) {
      window.addEventListener("load", function () { setTimeout(function () { window.print(); }, 300); });
    }
  }

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  window.addEventListener("beforeprint", function () { charts.forEach(function (c) { c.resize(); }); });
  document.addEventListener("DOMContentLoaded", function () { draw(); rows(); printLinks(); });
})();
