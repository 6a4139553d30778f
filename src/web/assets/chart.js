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
    const t0 = now - this.windowMs;
    const pts = this.points.filter((p) => p.ts >= t0);
    let max = 0;
    for (const p of pts) for (const s of this.series) max = Math.max(max, p[s.key] ?? 0);
    const top = niceCeil(max);
    const x = (ts) => pad.l + ((ts - t0) / this.windowMs) * (w - pad.l - pad.r);
    const y = (v) => hgt - pad.b - (v / top) * (hgt - pad.t - pad.b);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = text;
    g.strokeStyle = grid;
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      const yy = Math.round(y(v)) + 0.5;
      g.beginPath();
      g.moveTo(pad.l, yy);
      g.lineTo(w - pad.r, yy);
      g.stroke();
      g.fillText(rate(v), pad.l - 8, yy);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const minutes = this.windowMs / 60000;
    for (let m = minutes; m >= 0; m -= minutes >= 10 ? 2 : 1) {
      g.fillText(m === 0 ? "now" : `-${m} min`, Math.min(Math.max(x(now - m * 60000), pad.l + 16), w - pad.r - 14), hgt - pad.b + 6);
    }
    for (const s of this.series) {
      g.strokeStyle = s.color;
      g.lineWidth = 1.8;
      g.lineJoin = "round";
      g.beginPath();
      pts.forEach((p, i) => (i === 0 ? g.moveTo(x(p.ts), y(p[s.key] ?? 0)) : g.lineTo(x(p.ts), y(p[s.key] ?? 0))));
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

/** A round upper bound for the y axis (1, 2 or 5 times a power of 1024-ish steps), at least 1 KiB/s. */
function niceCeil(v) {
  const floor = 1024;
  if (v <= floor) return floor;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
