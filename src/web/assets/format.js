// Formatting of bytes, rates, times and durations for the page.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function bytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  let i = 0;
  while (Math.abs(n) >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 || n >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

export function rate(n) {
  return `${bytes(n)}/s`;
}

export function time(ts) {
  if (ts === undefined || ts === null || ts === "") return "–";
  const d = new Date(typeof ts === "number" ? ts : String(ts));
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleTimeString([], { hour12: false });
}

export function duration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

/** First present field among names (for event and list shapes that vary by service). */
export function pick(obj, ...names) {
  if (!obj || typeof obj !== "object") return undefined;
  for (const n of names) if (obj[n] !== undefined && obj[n] !== null) return obj[n];
  return undefined;
}

/** First finite number among names, else undefined. */
export function pickNum(obj, ...names) {
  for (const n of names) {
    const v = obj?.[n];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return undefined;
}
