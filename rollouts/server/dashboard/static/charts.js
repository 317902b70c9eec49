// Small SVG line charts for the judge's evidence: lines, a shaded band (a confidence
// sequence), horizontal reference lines (a threshold), linear or log y. No library.
"use strict";
const Charts = (() => {
  const esc = s => String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  const fmt = v => {
    if (!isFinite(v)) return v > 0 ? "∞" : "-∞";
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e4 || a < 1e-3) return v.toExponential(0).replace("e+", "e");
    return a >= 100 ? v.toFixed(0) : a >= 1 ? +v.toPrecision(3) + "" : +v.toPrecision(2) + "";
  };
  const fmtTime = s => s < 120 ? `${Math.round(s)}s` : s < 7200 ? `${+(s / 60).toFixed(1)}m` : `${+(s / 3600).toFixed(1)}h`;

  function ticks(lo, hi, log) {
    if (log) {
      const out = [];
      for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
      const inside = out.filter(t => t >= lo * 0.999 && t <= hi * 1.001);
      return inside.length >= 2 ? inside : [lo, hi];
    }
    const span = hi - lo || 1, raw = span / 4, mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) || raw;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
    return out;
  }

  // elapsed-time ticks at whole seconds, minutes or hours, 3 to 7 of them
  function timeTicks(span) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400];
    const step = steps.find(s => span / s <= 6) || Math.ceil(span / 6);
    const out = [];
    for (let t = 0; t <= span + 1e-9; t += step) out.push(t);
    return out;
  }

  // opts: {title, series: [{name, color, points: [[x, y]], dash}], band: {name, color,
  //   points: [[x, lo, hi]]}, hlines: [{y, label, color}], logY, yMin, yMax, yFormat}
  function line(opts) {
    const W = opts.width || 560, H = opts.height || 210, L = 52, R = 12, T = 38, B = 26;
    const log = !!opts.logY;
    const ok = y => typeof y === "number" && !isNaN(y) && (!log || y > 0);
    const xs = [], ys = [];
    for (const s of opts.series || []) for (const [x, y] of s.points) { xs.push(x); if (ok(y) && isFinite(y)) ys.push(y); }
    const band = opts.band;
    if (band) for (const [x, lo, hi] of band.points) { xs.push(x); for (const v of [lo, hi]) if (ok(v) && isFinite(v)) ys.push(v); }
    for (const h of opts.hlines || []) if (ok(h.y)) ys.push(h.y);
    const title = `<text class="title" x="${L}" y="15">${esc(opts.title || "")}</text>`;
    if (!xs.length || !ys.length) {
      return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" data-points="0">${title}` +
        `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data yet</text></svg>`;
    }
    // a shared time axis across charts when xMin/xMax are given
    let x0 = opts.xMin !== undefined ? opts.xMin : Math.min(...xs), x1 = opts.xMax !== undefined ? opts.xMax : Math.max(...xs);
    if (x1 === x0) x1 = x0 + 1;
    let y0 = opts.yMin !== undefined ? opts.yMin : Math.min(...ys), y1 = opts.yMax !== undefined ? opts.yMax : Math.max(...ys);
    if (log) { y0 = Math.max(y0, 1e-6); y0 = 10 ** Math.floor(Math.log10(y0)); y1 = 10 ** Math.ceil(Math.log10(Math.max(y1, y0 * 10))); }
    else { if (y1 === y0) { y1 = y0 + 1; } const pad = (y1 - y0) * 0.06; y1 += pad; if (opts.yMin === undefined && y0 !== 0) y0 -= pad; }
    const fy = v => log ? Math.log10(v) : v;
    const px = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const py = y => {
      if (!isFinite(y)) return y > 0 ? T : H - B;
      const v = Math.min(Math.max(fy(y), fy(y0)), fy(y1));
      return T + (1 - (v - fy(y0)) / (fy(y1) - fy(y0))) * (H - T - B);
    };
    let g = title;
    for (const t of ticks(y0, y1, log)) {
      g += `<line x1="${L}" x2="${W - R}" y1="${py(t)}" y2="${py(t)}" stroke="#eaeef2"/>` +
           `<text x="${L - 4}" y="${py(t) + 3}" text-anchor="end">${esc((opts.yFormat || fmt)(t))}</text>`;
    }
    for (const t of timeTicks(x1 - x0)) {
      g += `<text x="${px(x0 + t)}" y="${H - 8}" text-anchor="middle">${fmtTime(x0 + t)}</text>`;
    }
    g += `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#8c959f"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#8c959f"/>`;
    if (band && band.points.length) {
      const pts = band.points.filter(([, lo, hi]) => ok(lo) || ok(hi));
      const up = pts.map(([x, , hi]) => `${px(x)},${py(ok(hi) ? hi : Infinity)}`);
      const down = pts.slice().reverse().map(([x, lo]) => `${px(x)},${py(ok(lo) ? lo : y0)}`);
      if (pts.length === 1) {
        const [x, lo, hi] = pts[0];
        g += `<line class="band" x1="${px(x)}" x2="${px(x)}" y1="${py(ok(lo) ? lo : y0)}" y2="${py(ok(hi) ? hi : Infinity)}" stroke="${band.color}" stroke-width="6" opacity="0.3"/>`;
      } else if (pts.length) {
        g += `<polygon class="band" points="${up.concat(down).join(" ")}" fill="${band.color}" opacity="0.22"/>`;
      }
    }
    for (const h of opts.hlines || []) {
      if (!ok(h.y)) continue;
      g += `<line class="hline" x1="${L}" x2="${W - R}" y1="${py(h.y)}" y2="${py(h.y)}" stroke="${h.color || "#cf222e"}" stroke-dasharray="5 4"/>` +
           `<text x="${W - R - 2}" y="${py(h.y) - 3}" text-anchor="end" fill="${h.color || "#cf222e"}">${esc(h.label || "")}</text>`;
    }
    let n = 0;
    for (const s of opts.series || []) {
      const pts = s.points.filter(([, y]) => ok(y));
      n += pts.length;
      if (!pts.length) continue;
      const d = pts.map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join("");
      g += `<path class="series" data-name="${esc(s.name)}" d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`;
      const [lx, ly] = pts[pts.length - 1];
      g += `<circle cx="${px(lx)}" cy="${py(ly)}" r="2.5" fill="${s.color}"/>`;
    }
    const legend = [...(opts.series || []).map(s => [s.name, s.color]), ...(band ? [[band.name, band.color]] : [])]
      .map(([name, c], i) => `<rect x="${L + i * 150}" y="20" width="10" height="10" fill="${c}" opacity="0.8"/><text x="${L + 14 + i * 150}" y="29">${esc(name)}</text>`).join("");
    return `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" data-points="${n}">${g}${legend}</svg>`;
  }
  return {line, fmt, fmtTime, esc};
})();
