// The review UI's behaviour: charts (uPlot), the full-size image on click, the Compare epoch slider, the timeline.
// Data comes from JSON blocks the server renders into the page; nothing is fetched from elsewhere.
"use strict";

// A refused verdict (bad input) answers 400 with the form and its message: swap it in like a success.
if (window.htmx) {
  htmx.config.responseHandling = [
    { code: "204", swap: false }, { code: "[23]..", swap: true }, { code: "400", swap: true, error: false },
    { code: "[45]..", swap: false, error: true },
  ];
}

const COLOURS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00"];

function chart(element, x, series, options) {
  element.innerHTML = "";
  const data = [x, ...series.map((s) => s.values)];
  const opts = {
    width: 360, height: 200,
    scales: { x: { time: false } },
    legend: { live: false },
    // epochs are whole numbers: no 1.5 ticks
    axes: [{ incrs: options.xLabel === "step" ? undefined : [1, 2, 5, 10, 20, 50, 100] }, {}],
    series: [{ label: options.xLabel || "epoch" }, ...series.map((s) => ({
      label: s.label, stroke: s.colour, width: 2, dash: s.dash, points: { show: s.points !== false, size: 5 },
    }))],
    hooks: { draw: [(u) => markEpochs(u, options)] },
  };
  return new uPlot(opts, data, element);
}

// Best epoch: a green line; blank epochs: red lines (an epoch with a blank sample is never the best).
function markEpochs(u, options) {
  const ctx = u.ctx;
  const mark = (epoch, colour) => {
    const x = u.valToPos(epoch, "x", true);
    ctx.save(); ctx.strokeStyle = colour; ctx.lineWidth = 2; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke(); ctx.restore();
  };
  (options.blank || []).forEach((e) => mark(e, "#e53935"));
  if (options.best !== null && options.best !== undefined) mark(options.best, "#2e7d32");
}

function runCharts(root) {
  const block = root.querySelector("script.chart-data");
  if (!block) return;
  const data = JSON.parse(block.textContent);
  root.querySelectorAll("[data-chart=loss]").forEach((el) => {
    if (!data.loss.length) { el.textContent = "no loss recorded yet"; return; }
    chart(el, data.loss.map((p) => p.x), [{ label: "loss", colour: COLOURS[0], values: data.loss.map((p) => p.y),
                                            points: data.loss.length < 60 }], { xLabel: "step" });
  });
  root.querySelectorAll("[data-chart=metric]").forEach((el) => {
    const metric = el.dataset.metric;
    const epochs = data.series.epochs;
    if (!epochs.length) { el.textContent = "no scored epochs yet"; return; }
    const series = [{ label: metric, colour: COLOURS[0], values: data.series.metrics[metric] }];
    const ref = data.reference && data.reference.metrics[metric] && data.reference.metrics[metric].mean;
    if (ref !== null && ref !== undefined) {
      series.push({ label: "reference", colour: "#888", dash: [6, 4], points: false, values: epochs.map(() => ref) });
    }
    chart(el, epochs, series, { best: data.best_epoch, blank: data.series.blank_epochs });
  });
}

function compareCharts() {
  const block = document.getElementById("compare-data");
  if (!block) return null;
  const data = JSON.parse(block.textContent);
  document.querySelectorAll("[data-chart=overlay]").forEach((el) => {
    const metric = el.dataset.metric;
    const epochs = [...new Set(data.runs.flatMap((r) => r.series.epochs))].sort((a, b) => a - b);
    if (!epochs.length) { el.textContent = "no scored epochs"; return; }
    const series = data.runs.map((run, i) => {
      const at = Object.fromEntries(run.series.epochs.map((e, j) => [e, run.series.metrics[metric][j]]));
      return { label: run.name, colour: COLOURS[i % COLOURS.length], values: epochs.map((e) => at[e] ?? null) };
    });
    chart(el, epochs, series, {});
  });
  return data;
}

// One slider moves every compared run to the same epoch.
function compareSlider(data) {
  const slider = document.getElementById("epoch-slider");
  if (!slider || !data) return;
  const shown = document.getElementById("epoch-shown");
  slider.addEventListener("input", () => {
    const epoch = String(data.epochs[Number(slider.value)]);
    shown.textContent = epoch;
    document.querySelectorAll("img[data-run]").forEach((img) => {
      const run = data.runs.find((r) => r.id === img.dataset.run);
      const cell = run.cells[epoch] && run.cells[epoch][Number(img.dataset.row)];
      img.src = cell ? `/image/sample/${cell.id}/${cell.has_24 ? "24" : "full"}` : "/static/missing.svg";
      if (cell) img.dataset.full = `/image/sample/${cell.id}/full`; else delete img.dataset.full;
      img.dataset.epoch = epoch;
    });
  });
}

function zoom(event) {
  const img = event.target.closest("img.thumb");
  if (!img || !img.dataset.full) return;
  const dialog = document.getElementById("zoom");
  dialog.querySelector("img").src = img.dataset.full;
  dialog.querySelector("p").textContent = img.alt;
  dialog.showModal();
}

function timeline() {
  const block = document.getElementById("timeline-data");
  if (!block) return;
  const runs = JSON.parse(block.textContent);
  const box = document.getElementById("timeline");
  if (!runs.length) { box.textContent = "no runs"; return; }
  const t = (s) => (s ? Date.parse(s) : null);
  const now = Date.now();
  const spans = runs.map((r) => {
    const start = t(r.started_at) ?? t(r.created_at);
    const open = r.status === "running" || r.status === "queued" || r.status === "planned";
    const end = t(r.finished_at) ?? (open ? now : (t(r.heartbeat_at) ?? start));
    return { run: r, start, end: Math.max(end, start) };
  });
  const lo = Math.min(...spans.map((s) => Math.min(s.start, t(s.run.created_at))));
  const hi = Math.max(...spans.map((s) => s.end), lo + 1);
  const pct = (v) => ((v - lo) / (hi - lo)) * 100;
  const axis = document.createElement("div");
  axis.className = "axis";
  axis.innerHTML = "<span></span><span></span>";
  axis.children[0].textContent = new Date(lo).toISOString().slice(0, 16).replace("T", " ");
  axis.children[1].textContent = new Date(hi).toISOString().slice(0, 16).replace("T", " ");
  box.appendChild(axis);
  for (const s of spans) {
    const lane = document.createElement("div");
    lane.className = "lane";
    const queued = document.createElement("a");
    queued.className = `span ${s.run.status}`;
    queued.href = `/run/${encodeURIComponent(s.run.id)}`;
    queued.style.left = `${pct(s.start)}%`;
    queued.style.width = `${Math.max(pct(s.end) - pct(s.start), 0.3)}%`;
    queued.title = `${s.run.name}: ${s.run.status}`;  // textContent/title: names are untrusted text
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = s.run.name;
    lane.append(queued);
    const created = t(s.run.created_at);
    if (t(s.run.started_at) !== null && created < s.start) {  // waiting in the queue before it started
      const wait = document.createElement("span");
      wait.className = "span queued wait";
      wait.style.left = `${pct(created)}%`;
      wait.style.width = `${Math.max(pct(s.start) - pct(created), 0.3)}%`;
      wait.title = `${s.run.name}: queued`;
      lane.append(wait);
    }
    lane.append(name);
    box.appendChild(lane);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  runCharts(document);
  compareSlider(compareCharts());
  timeline();
  document.addEventListener("click", zoom);
  // The live part of a Run page is replaced every few seconds: draw its charts again.
  document.body.addEventListener("htmx:afterSwap", (event) => runCharts(event.detail.target));
  const compare = document.getElementById("compare-form");
  if (compare) {
    compare.addEventListener("submit", (event) => {
      const ticked = compare.querySelectorAll("input[name=run]:checked").length;
      if (ticked < 2 || ticked > 4) { event.preventDefault(); alert("tick 2 to 4 runs to compare"); }
    });
  }
});
