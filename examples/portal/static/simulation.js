/* A simulation's result, one week at a time: PV, load and grid exchange in kW,
 * and the battery's state of charge in kWh, as plain SVG. follow.js calls
 *
 *   SimulationView.show(resultDocument, fetchedFromUrl)
 *
 * when the job is done; the week <select id="week"> redraws from the same
 * document. Times are shown at the offset in <div id="job" data-utc-offset>
 * (seconds east of UTC; 0 when absent). Each drawn line is a <polyline> with
 * class pv, load, grid or soc and attributes data-points (how many steps),
 * data-first-ts and data-last-ts (unix seconds) and data-sum (the sum of the
 * week's values as the document has them: kWh per step, the grid as import
 * minus export; for soc the last value).
 */
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 960;
  const POWER = { top: 30, height: 260 };
  const SOC = { top: 330, height: 100 };
  const HEIGHT = 490;
  const LEFT = 70;
  const RIGHT = 20;
  const WEEK = 7 * 86400;
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const SERIES = [
    { name: "pv", label: "PV", unit: "kW" },
    { name: "load", label: "Load", unit: "kW" },
    { name: "grid", label: "Grid (import +, export −)", unit: "kW" },
  ];
  const fmt = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 2 });

  function el(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function label(parent, x, y, content, attributes) {
    const node = el("text", Object.assign({ x: x, y: y }, attributes), parent);
    node.textContent = content;
    return node;
  }

  function dayName(ts, offset) {
    const d = new Date((ts + offset) * 1000);
    return `${DAYS[d.getUTCDay()]} ${String(d.getUTCDate()).padStart(2, "0")} ${MONTHS[d.getUTCMonth()]}`;
  }

  /* The week's slice of every series, as [ts, value] pairs in the document's units. */
  function weekOf(data, week) {
    const series = data.series;
    const start = series.load.length ? series.load[0][0] + week * WEEK : 0;
    const pick = (pairs) => pairs.filter(([t]) => t >= start && t < start + WEEK);
    const imports = pick(series.grid_import);
    const exports = pick(series.grid_export);
    return {
      start: start,
      pv: pick(series.pv),
      load: pick(series.load),
      grid: imports.map(([t, v], i) => [t, v - exports[i][1]]),
      soc: pick(series.soc),
    };
  }

  function polyline(svg, name, pairs, x, y, toValue) {
    const points = pairs.map(([t, v]) => `${x(t).toFixed(1)},${y(toValue(v)).toFixed(1)}`);
    const sum = name === "soc" ? (pairs.length ? pairs[pairs.length - 1][1] : 0)
      : pairs.reduce((total, [, v]) => total + v, 0);
    return el("polyline", {
      class: name,
      points: points.join(" "),
      "data-points": pairs.length,
      "data-first-ts": pairs.length ? pairs[0][0] : "",
      "data-last-ts": pairs.length ? pairs[pairs.length - 1][0] : "",
      "data-sum": sum,
    }, svg);
  }

  function draw(container, data, week, offset) {
    const slice = weekOf(data, week);
    const hours = data.interval / 3600;
    const kw = (kwh) => kwh / hours;
    const x = (t) => LEFT + ((t - slice.start) / WEEK) * (WIDTH - LEFT - RIGHT);
    const values = [0];
    for (const name of ["pv", "load", "grid"]) for (const [, v] of slice[name]) values.push(kw(v));
    const low = Math.min(...values);
    const high = Math.max(...values, 0.1);
    const yPower = (v) => POWER.top + (1 - (v - low) / (high - low)) * POWER.height;
    const capacity = Math.max(data.battery ? data.battery.capacity_kwh : 0, 1e-9);
    const ySoc = (v) => SOC.top + (1 - v / capacity) * SOC.height;

    container.textContent = "";
    const svg = el("svg", {
      class: "energy-chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
      "aria-label": `PV, load, grid exchange and battery, week ${week + 1}`,
    }, container);
    const rules = el("g", { class: "rules" }, svg);
    for (let day = 0; day <= 7; day++) {
      const t = slice.start + day * 86400;
      el("line", { x1: x(t), x2: x(t), y1: POWER.top, y2: SOC.top + SOC.height, class: "day" }, rules);
      if (day < 7) label(svg, x(t + 43200), HEIGHT - 28, dayName(t, offset), { class: "tick-label", "text-anchor": "middle" });
    }
    for (const v of [low, 0, high]) {
      el("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: yPower(v), y2: yPower(v), class: v === 0 ? "zero" : "" }, rules);
      label(svg, LEFT - 6, yPower(v) + 4, `${fmt.format(v)} kW`, { class: "tick-label", "text-anchor": "end" });
    }
    for (const v of [0, capacity]) {
      el("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: ySoc(v), y2: ySoc(v) }, rules);
      label(svg, LEFT - 6, ySoc(v) + 4, `${fmt.format(v)} kWh`, { class: "tick-label", "text-anchor": "end" });
    }
    label(svg, LEFT, SOC.top - 8, "Battery state of charge", { class: "axis-label" });
    for (const series of SERIES) polyline(svg, series.name, slice[series.name], x, yPower, kw);
    polyline(svg, "soc", slice.soc, x, ySoc, (v) => v);
    let lx = LEFT;
    for (const [name, text] of [["pv", "PV"], ["load", "Load"], ["grid", "Grid: import +, export −"], ["soc", "Battery"]]) {
      el("line", { x1: lx, x2: lx + 22, y1: 14, y2: 14, class: `legend ${name}` }, svg);
      label(svg, lx + 28, 18, text, { class: "legend-label" });
      lx += 60 + text.length * 7;
    }
    const offsetHours = offset / 3600;
    label(svg, WIDTH - RIGHT, HEIGHT - 8, `Local time, UTC${offsetHours < 0 ? "−" : "+"}${Math.abs(offsetHours)}`, { class: "axis-label", "text-anchor": "end" });
  }

  function totalsTable(data) {
    const body = document.querySelector("#totals tbody");
    body.textContent = "";
    const t = data.totals;
    const rows = [
      ["PV", `${fmt.format(t.pv)} kWh (${fmt.format(data.pv.specific_yield || 0)} kWh/kWp, ${data.pv.source.replace("_", " ")})`],
      ["Load", `${fmt.format(t.load)} kWh`],
      ["Grid import / export", `${fmt.format(t.grid_import)} / ${fmt.format(t.grid_export)} kWh`],
      ["Self-sufficiency", `${fmt.format(100 * t.self_sufficiency)} %`],
      ["Battery cycles", fmt.format(t.cycles)],
    ];
    if ("cost_without_pv" in t) {
      rows.push(
        ["Cost without PV", fmt.format(t.cost_without_pv)],
        ["Cost with PV", fmt.format(t.cost_with_pv)],
        ["Cost with PV and battery", fmt.format(t.cost_with_pv_battery)],
        ["Battery saves per year", fmt.format(t.battery_saving_per_year)],
      );
    }
    for (const [name, value] of rows) {
      const row = body.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = value;
    }
  }

  function show(doc, fetchedFrom) {
    const data = doc.data;
    const job = document.getElementById("job");
    const offset = Number(job.dataset.utcOffset || 0);
    const select = document.getElementById("week");
    const chart = document.getElementById("chart");
    const redraw = () => {
      draw(chart, data, Number(select.value), offset);
      job.dataset.week = select.value;
    };
    select.addEventListener("change", redraw);
    redraw();
    totalsTable(data);
    document.getElementById("summary").textContent =
      `${data.series.load.length} steps of ${data.interval / 60} min. ` +
      `Computed by ${doc.worker || "a worker"}, published ${doc.timestamp}; ` +
      `result document loaded from ${new URL(fetchedFrom).origin}.`;
  }

  window.SimulationView = { show: show };
})();
