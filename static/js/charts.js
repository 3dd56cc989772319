/* Draws every Plotly figure whose spec sits in a json_script element:
 *   <div data-chart="importance-figure"></div> + {{ figure|json_script:"importance-figure" }}
 * The spec is {data, layout, config}, built by the view. */
(function () {
  "use strict";

  function draw(target) {
    var source = document.getElementById(target.dataset.chart);
    if (!source || !window.Plotly) return;
    var figure = JSON.parse(source.textContent);
    var layout = Object.assign({ font: { family: getComputedStyle(document.body).fontFamily } }, figure.layout || {});
    window.Plotly.newPlot(target, figure.data || [], layout, figure.config || { displaylogo: false, responsive: true });
  }

  document.querySelectorAll("[data-chart]").forEach(draw);
})();
