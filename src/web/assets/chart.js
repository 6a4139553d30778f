// A small line chart on <canvas>: several series over time, y in bytes/s, sized to its box.
import { rate } from "./format.js";

export class RateChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{key: string, label: string, color: string}[]} series
   * @param {number} windowMs how much history to show
   */
  constructor(canvas, series, windowMs = 10 * 60 * 1000) {
    this.canvas = canvas;
    this.series = series;
    this.windowMs = windowMs;
    this.points = [];
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setPoints(points) {
    this.points = points.slice(-1200);
    this.draw();
  }

  push(point) {
    this.points.push(point);
    if (this.points.length > 1200) this.points.shift();
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const hgt = c.clientHeight;
    if (w === 0 || hgt === 0) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(c);
    const grid = css.getPropertyValue("--chart-grid").trim() || "#e5e7eb";
    const text = css.getPropertyValue("--chart-text").trim() || "#6b7280";
    const pad = { l: 74, r: 12, t: 10, b: 22 };
    const now = Date.now();
    // show what there is, from one minute up to the whole window
    const first = this.points.find((p) => p.ts >= now - this.windowMs)?.ts ?? now;
    const span = Math.min(
      this.windowMs,
      Math.max(60_000, Math.ceil((now - first) / 60_000) * 60_000),
    );
    const t0 = now - span;
    const pts = this.points.filter((p) => p.ts >= t0);
    let max = 0;
    for (const p of pts) for (const s of this.series) max = Math.max(max, p[s.key] ?? 0);
    const { top, ticks } = niceScale(max);
    const x = (ts) => pad.l + ((ts - t0) / span) * (w - pad.l - pad.r);
    const y = (v) => hgt - pad.b - (v / top) * (hgt - pad.t - pad.b);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = text;
    g.strokeStyle = grid;
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= ticks; i++) {
      const v = (top * i) / ticks;
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath();
      g.moveTo(pad.l, yy);
      g.lineTo(w - pad.r, yy);
      g.stroke();
      g.fillText(rate(v), pad.l - 8, yy);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const minutes = span / 60000;
    const step = minutes <= 1 ? 0.25 : minutes <= 3 ? 0.5 : minutes <= 6 ? 1 : 2;
    for (let m = minutes; m >= 0; m -= step) {
      const label = m === 0 ? "now" : m < 1 ? `-${Math.round(m * 60)} s` : `-${m} min`;
      g.fillText(
        label,
        Math.min(Math.max(x(now - m * 60000), pad.l + 16), w - pad.r - 14),
        hgt - pad.b + 6,
      );
    }
    for (const s of this.series) {
      g.strokeStyle = s.color;
      g.lineWidth = 1.8;
      g.lineJoin = "round";
      g.beginPath();
      for (const [i, p] of pts.entries()) {
        if (i === 0) g.moveTo(x(p.ts), y(p[s.key] ?? 0));
        else g.lineTo(x(p.ts), y(p[s.key] ?? 0));
      }
      g.stroke();
    }
    if (pts.length === 0) {
      g.fillStyle = text;
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.fillText("waiting for samples…", (w + pad.l) / 2, hgt / 2);
    }
  }
}

/** A round top for the y axis in the unit the values need (B, KiB, MiB...), at least 1 KiB/s, and a tick count that divides it evenly. */
function niceScale(v) {
  if (v <= 1024) return { top: 1024, ticks: 4 };
  let unit = 1;
  while (v / unit >= 1024) unit *= 1024;
  const x = v / unit;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const [m, ticks] of [
    [1, 4],
    [2, 4],
    [4, 4],
    [5, 5],
    [8, 4],
    [10, 5],
  ])
    if (m * p >= x) return { top: m * p * unit, ticks };
  return { top: 10 * p * unit, ticks: 5 };
}
