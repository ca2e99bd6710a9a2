/* A small SVG chart of a series' history, its forecast and the forecast's
 * prediction interval. Plain DOM, no library.
 *
 *   ForecastChart.draw(container, {
 *     history: [[unix_ts, value], ...],      // may be empty
 *     forecast: [[unix_ts, value], ...],
 *     lower: [[unix_ts, value], ...],        // the interval, same time stamps
 *     upper: [[unix_ts, value], ...],
 *     unit: "MW", level: 0.9,
 *   });
 *
 * Times are shown in UTC. Every forecast point is also a <circle
 * class="forecast-point" data-ts data-value>, with its value as a tooltip.
 */
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 960;
  const HEIGHT = 420;
  const MARGIN = { top: 16, right: 24, bottom: 64, left: 76 };
  const HOUR = 3600;
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const numbers = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 1 });

  function el(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes || {})) {
      node.setAttribute(key, String(value));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attributes) {
    const node = el("text", Object.assign({ x: x, y: y }, attributes), parent);
    node.textContent = content;
    return node;
  }

  /* Round tick values: steps of 1, 2 or 5 times a power of ten, about `count` of them. */
  function valueTicks(low, high, count) {
    const raw = (high - low) / count;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    const ticks = [];
    for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) {
      ticks.push(v);
    }
    return ticks;
  }

  /* Time ticks on whole UTC hours: 3, 6, 12 or 24 hours apart, at most about 12. */
  function timeTicks(start, end) {
    const span = (end - start) / HOUR;
    const step = [3, 6, 12, 24].find((h) => span / h <= 12) || 24 * Math.ceil(span / 24 / 12);
    const ticks = [];
    for (let t = Math.ceil(start / (step * HOUR)) * step * HOUR; t <= end; t += step * HOUR) {
      ticks.push(t);
    }
    return ticks;
  }

  function timeLabel(ts) {
    const d = new Date(ts * 1000);
    if (d.getUTCHours() === 0) {
      return `${DAYS[d.getUTCDay()]} ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
    }
    return `${String(d.getUTCHours()).padStart(2, "0")}:00`;
  }

  function points(series, x, y) {
    return series.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  }

  function draw(container, spec) {
    const history = spec.history || [];
    const forecast = spec.forecast || [];
    const lower = spec.lower || [];
    const upper = spec.upper || [];
    const all = history.concat(forecast, lower, upper);
    if (all.length === 0) throw new Error("nothing to draw");

    const times = all.map((p) => p[0]);
    const values = all.map((p) => p[1]);
    const t0 = Math.min(...times);
    const t1 = Math.max(...times);
    const pad = (Math.max(...values) - Math.min(...values)) * 0.06 || 1;
    const v0 = Math.min(...values) - pad;
    const v1 = Math.max(...values) + pad;
    const left = MARGIN.left;
    const right = WIDTH - MARGIN.right;
    const top = MARGIN.top;
    const bottom = HEIGHT - MARGIN.bottom;
    const x = (t) => left + ((t - t0) / (t1 - t0 || 1)) * (right - left);
    const y = (v) => bottom - ((v - v0) / (v1 - v0)) * (bottom - top);

    const svg = el("svg", {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      class: "forecast-chart",
      role: "img",
      "aria-label": `History and forecast in ${spec.unit || ""}`,
    });

    const grid = el("g", { class: "grid" }, svg);
    const axes = el("g", { class: "axes" }, svg);
    for (const v of valueTicks(v0, v1, 6)) {
      el("line", { x1: left, x2: right, y1: y(v), y2: y(v) }, grid);
      text(axes, left - 8, y(v) + 4, numbers.format(v), { class: "tick-label", "text-anchor": "end" });
    }
    for (const t of timeTicks(t0, t1)) {
      el("line", { x1: x(t), x2: x(t), y1: top, y2: bottom, class: t % 86400 === 0 ? "day" : "" }, grid);
      text(axes, x(t), bottom + 18, timeLabel(t), { class: "tick-label", "text-anchor": "middle" });
    }
    el("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis" }, axes);
    el("line", { x1: left, x2: left, y1: top, y2: bottom, class: "axis" }, axes);
    text(axes, 16, (top + bottom) / 2, spec.unit || "", {
      class: "axis-label",
      "text-anchor": "middle",
      transform: `rotate(-90 16 ${(top + bottom) / 2})`,
    });
    text(axes, (left + right) / 2, HEIGHT - 26, "time (UTC)", { class: "axis-label", "text-anchor": "middle" });

    if (lower.length && upper.length) {
      const band = points(upper, x, y) + " " + points(lower.slice().reverse(), x, y);
      el("polygon", { class: "interval", points: band }, svg);
    }
    if (forecast.length) {
      el("line", {
        class: "forecast-start",
        x1: x(forecast[0][0]), x2: x(forecast[0][0]), y1: top, y2: bottom,
      }, svg);
    }
    if (history.length) {
      el("polyline", { class: "history", points: points(history, x, y), "data-points": history.length }, svg);
    }
    el("polyline", { class: "forecast", points: points(forecast, x, y), "data-points": forecast.length }, svg);
    const dots = el("g", { class: "forecast-points" }, svg);
    for (const [t, v] of forecast) {
      const dot = el("circle", { class: "forecast-point", cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.2, "data-ts": t, "data-value": v }, dots);
      el("title", {}, dot).textContent = `${timeLabel(t)}: ${numbers.format(v)} ${spec.unit || ""}`;
    }

    const legend = el("g", { class: "legend", transform: `translate(${left}, ${HEIGHT - 8})` }, svg);
    const entries = [["history", "history"], ["forecast", "forecast"]];
    if (lower.length) entries.push(["interval", `${Math.round((spec.level || 0) * 100)} % prediction interval`]);
    let offset = 0;
    for (const [kind, label] of entries) {
      if (kind === "interval") {
        el("rect", { class: "interval", x: offset, y: -9, width: 22, height: 10 }, legend);
      } else {
        el("line", { class: kind, x1: offset, x2: offset + 22, y1: -4, y2: -4 }, legend);
      }
      text(legend, offset + 28, 0, label, { class: "legend-label" });
      offset += 40 + label.length * 7;
    }

    container.replaceChildren(svg);
    return svg;
  }

  window.ForecastChart = { draw: draw };
})();
