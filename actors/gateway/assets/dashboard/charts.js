// A small SVG line chart for the supervisor dashboard: several series, an automatic y scale,
// a time x axis, a legend. No dependencies.
//
//   const chart = new LineChart(document.getElementById("chart-requests"), {title: "Requests/s", unit: "/s"});
//   chart.update([{name: "order", points: [[timeMillis, value], ...]}], windowMillis);
// Options: title, unit (after each value), height (px), integer (whole-number y steps).
//
// A point whose value is null breaks its line (no data for that moment).
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
                   "#475569", "#ea580c"];
  const PAD = {left: 46, right: 10, top: 8, bottom: 20};

  // Colors stay with a series name for the life of the page, whatever order series come in.
  const colorOf = (() => {
    const assigned = new Map();
    return (name) => {
      if (!assigned.has(name)) assigned.set(name, PALETTE[assigned.size % PALETTE.length]);
      return assigned.get(name);
    };
  })();

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A "nice" step (1, 2, 5 x 10^n) so that about `ticks` steps cover `span`.
  function niceStep(span, ticks) {
    const raw = span / Math.max(1, ticks);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const unit = raw / power;
    return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
  }

  function formatValue(value) {
    const abs = Math.abs(value);
    if (abs >= 1e6) return (value / 1e6).toFixed(abs >= 1e7 ? 0 : 1) + "M";
    if (abs >= 1e3) return (value / 1e3).toFixed(abs >= 1e4 ? 0 : 1) + "k";
    if (abs >= 10 || value === 0) return value.toFixed(0);
    return value.toFixed(abs >= 1 ? 1 : 2);
  }

  function formatClock(millis) {
    const date = new Date(millis);
    return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }

  class LineChart {
    constructor(container, options) {
      this.container = container;
      this.options = Object.assign({title: "", unit: "", height: 170}, options || {});
      container.classList.add("chart");
      const title = document.createElement("div");
      title.className = "chart-title";
      title.textContent = this.options.title;
      this.legend = document.createElement("div");
      this.legend.className = "chart-legend";
      this.svg = el("svg", {class: "chart-svg", preserveAspectRatio: "none"});
      container.replaceChildren(title, this.svg, this.legend);
    }

    // Draws `series` over the last `windowMillis` before the newest point.
    update(series, windowMillis) {
      const width = Math.max(200, this.container.clientWidth || 400);
      const height = this.options.height;
      const plotWidth = width - PAD.left - PAD.right;
      const plotHeight = height - PAD.top - PAD.bottom;
      this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
      this.svg.setAttribute("width", width);
      this.svg.setAttribute("height", height);

      let newest = 0;
      let top = 0;
      for (const one of series) {
        for (const [t, v] of one.points) {
          newest = Math.max(newest, t);
          if (v !== null && Number.isFinite(v)) top = Math.max(top, v);
        }
      }
      if (!newest) newest = Date.now();
      const oldest = newest - windowMillis;
      let step = niceStep(top > 0 ? top : 1, 4);
      if (this.options.integer) step = Math.max(1, Math.round(step));
      const yMax = Math.max(step, Math.ceil((top * 1.05) / step) * step);
      const x = (t) => PAD.left + ((t - oldest) / windowMillis) * plotWidth;
      const y = (v) => PAD.top + plotHeight - (v / yMax) * plotHeight;

      const children = [];
      // Horizontal grid lines with their values.
      for (let v = 0; v <= yMax + step / 2; v += step) {
        children.push(el("line", {class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v)}));
        children.push(el("text", {class: "axis-label", x: PAD.left - 5, y: y(v) + 3, "text-anchor": "end"},
          formatValue(v) + (v === 0 ? "" : this.options.unit)));
      }
      // Time ticks every minute (or every 15 s for short windows).
      const tickEvery = windowMillis > 120000 ? 60000 : 15000;
      for (let t = Math.ceil(oldest / tickEvery) * tickEvery; t <= newest; t += tickEvery) {
        children.push(el("line", {class: "grid vertical", x1: x(t), x2: x(t), y1: PAD.top, y2: PAD.top + plotHeight}));
        if (x(t) < width - 24) { // a label that would be cut at the right edge is left out
          children.push(el("text", {class: "axis-label", x: x(t), y: height - 5, "text-anchor": "middle"}, formatClock(t)));
        }
      }
      children.push(el("line", {class: "axis", x1: PAD.left, x2: width - PAD.right, y1: y(0), y2: y(0)}));

      // One polyline per unbroken run of points.
      for (const one of series) {
        let run = [];
        const flush = () => {
          if (run.length > 1) {
            children.push(el("polyline", {class: "series", stroke: colorOf(one.name), points: run.join(" ")}));
          } else if (run.length === 1) {
            const [px, py] = run[0].split(",");
            children.push(el("circle", {cx: px, cy: py, r: 1.8, fill: colorOf(one.name)}));
          }
          run = [];
        };
        for (const [t, v] of one.points) {
          if (t < oldest) continue;
          if (v === null || !Number.isFinite(v)) flush();
          else run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
        }
        flush();
      }
      if (!series.length) {
        children.push(el("text", {class: "chart-empty", x: PAD.left + plotWidth / 2, y: PAD.top + plotHeight / 2,
          "text-anchor": "middle"}, "no data yet"));
      }
      this.svg.replaceChildren(...children);
      this.renderLegend(series);
    }

    // The legend: each series' color, name and newest value.
    renderLegend(series) {
      const items = series.map((one) => {
        const item = document.createElement("span");
        item.className = "legend-item";
        const swatch = document.createElement("i");
        swatch.style.background = colorOf(one.name);
        const last = [...one.points].reverse().find(([, v]) => v !== null && Number.isFinite(v));
        item.append(swatch, document.createTextNode(
          `${one.name} ${last ? formatValue(last[1]) + this.options.unit : "–"}`));
        return item;
      });
      this.legend.replaceChildren(...items);
    }
  }

  window.LineChart = LineChart;
})();
