// Line charts in plain SVG: time on x (a window ending now), values on y from 0, a legend with
// the latest values, and a hover read-out.  renderChart(box, {...}) redraws box in place.
import { h } from "./dom.js";

const NS = "http://www.w3.org/2000/svg";
const PAD = { left: 54, right: 12, top: 10, bottom: 22 };

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

// 0, and a round maximum with 4 steps: 0, 2.5, 5, 7.5, 10 ...
function scale(max, integer) {
  if (!(max > 0)) return { top: 4, step: 1 };
  const rough = max / 4;
  const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((st) => st >= rough);
  if (integer) step = Math.max(1, Math.ceil(step));
  return { top: step * 4, step };
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

// series: [{key, label, color, points: [[epochMs, value], ...] oldest first}]
export function renderChart(box, { name, series, span, format, integer = false, now = Date.now(), height = 190 }) {
  const width = Math.max(320, Math.round(box.clientWidth || 600));
  const x0 = now - span;
  const inner = { w: width - PAD.left - PAD.right, h: height - PAD.top - PAD.bottom };
  const max = Math.max(0, ...series.flatMap((se) => se.points.filter((p) => p[0] >= x0).map((p) => p[1])));
  const { top, step } = scale(max, integer);
  const X = (t) => PAD.left + ((t - x0) / span) * inner.w;
  const Y = (v) => PAD.top + inner.h - (Math.max(0, v) / top) * inner.h;

  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": name, class: "chart" });
  svg.dataset.chart = name;
  for (let v = 0; v <= top + step / 2; v += step) {
    svg.append(s("line", { class: v ? "grid" : "axis", x1: PAD.left, x2: width - PAD.right, y1: Y(v), y2: Y(v) }));
    svg.append(s("text", { x: PAD.left - 6, y: Y(v) + 4, "text-anchor": "end" }, format(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = x0 + (span * i) / 4;
    const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
    svg.append(s("text", { x: X(t), y: height - 6, "text-anchor": anchor }, clock(t)));
  }
  for (const se of series) {
    const pts = se.points.filter((p) => p[0] >= x0 - span / 20);
    if (pts.length) {
      const line = pts.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
      const base = Y(0).toFixed(1);
      const area = `${line}L${X(pts[pts.length - 1][0]).toFixed(1)},${base}L${X(pts[0][0]).toFixed(1)},${base}Z`;
      svg.append(s("path", { d: area, fill: se.color, "fill-opacity": "0.07", stroke: "none" }));
      svg.append(s("path", { d: line, fill: "none", stroke: se.color, "stroke-width": "2", "stroke-linejoin": "round", "data-series": se.key }));
      const [t, v] = pts[pts.length - 1];
      svg.append(s("circle", { cx: X(t).toFixed(1), cy: Y(v).toFixed(1), r: "3", fill: se.color }));
    }
    const last = se.points.length ? se.points[se.points.length - 1][1] : 0;
    svg.dataset["last" + se.key.replace(/(^|_)(\w)/g, (_m, _u, c) => c.toUpperCase())] = String(last);
  }
  svg.dataset.points = String(Math.max(0, ...series.map((se) => se.points.length)));
  // a clip so that a line entering from the left does not cross the axis labels
  const clip = s("clipPath", { id: `clip-${name}` }, s("rect", { x: PAD.left, y: 0, width: inner.w, height }));
  svg.prepend(s("defs", {}, clip));
  for (const p of svg.querySelectorAll("path")) p.setAttribute("clip-path", `url(#clip-${name})`);

  const cursor = s("line", { class: "axis", y1: PAD.top, y2: PAD.top + inner.h, visibility: "hidden" });
  svg.append(cursor);
  const readout = h("div", { class: "toast", style: { position: "absolute", display: "none", pointerEvents: "none", fontSize: ".85em" } });
  svg.addEventListener("mousemove", (event) => {
    const rect = svg.getBoundingClientRect();
    const t = x0 + (((event.clientX - rect.left) * (width / rect.width) - PAD.left) / inner.w) * span;
    const lines = [];
    let at = null;
    for (const se of series) {
      let best = null;
      for (const p of se.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      if (best) { at = best[0]; lines.push(h("div", {}, `${se.label}: ${format(best[1])}`)); }
    }
    if (at == null || at < x0) { readout.style.display = "none"; cursor.setAttribute("visibility", "hidden"); return; }
    cursor.setAttribute("x1", X(at)); cursor.setAttribute("x2", X(at)); cursor.setAttribute("visibility", "visible");
    readout.replaceChildren(h("div", {}, clock(at)), ...lines);
    readout.style.display = "block";
    readout.style.left = Math.min(event.clientX - rect.left + 14, rect.width - 180) + "px";
    readout.style.top = "8px";
  });
  svg.addEventListener("mouseleave", () => { readout.style.display = "none"; cursor.setAttribute("visibility", "hidden"); });

  const legend = h("div", { class: "chart-legend" }, series.map((se) => {
    const last = se.points.length ? se.points[se.points.length - 1][1] : null;
    return h("span", { dataset: { series: se.key } }, h("span", { class: "sw", style: { background: se.color } }), se.label,
      h("b", {}, last == null ? "–" : format(last)));
  }));
  box.replaceChildren(svg, legend, readout);
}

// Cumulative samples (newest first, as the API gives them) -> per-second rates, oldest first.
export function ratesFromSamples(samples) {
  const out = [];
  for (let i = samples.length - 1; i > 0; i--) {
    const older = samples[i], newer = samples[i - 1];
    const seconds = (newer.timestamp - older.timestamp) / 1000;
    if (seconds > 0) out.push([newer.timestamp, Math.max(0, (newer.sample - older.sample) / seconds)]);
  }
  return out;
}

// Gauge samples (newest first) -> points, oldest first.
export function pointsFromSamples(samples) {
  return samples.map((x) => [x.timestamp, x.sample]).reverse();
}

// A series kept in the page while it is open, for objects the server keeps no history of.
export class Recorder {
  constructor(span) { this.span = span; this.points = {}; }
  add(key, t, value) {
    const pts = (this.points[key] = this.points[key] || []);
    pts.push([t, value]);
    while (pts.length && pts[0][0] < t - this.span) pts.shift();
    return pts;
  }
}

export const COLORS = ["#1f64d6", "#f26b1d", "#1f9d55", "#9b3fd4", "#d63939", "#0e9aa7"];
