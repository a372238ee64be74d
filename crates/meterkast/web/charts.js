// Charts: a hand-made SVG bar chart (stacked, signed, clickable, with a ghost of the
// period compared against) and the live line chart on the vendored uPlot.

const SVG = 'http://www.w3.org/2000/svg';

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** "Nice" axis ticks covering [lo, hi]. */
function ticks(lo, hi, n = 4) {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(Math.round(v / step) * step + 0);
  out.step = step;
  return out;
}

/**
 * Draws bars into `box` and redraws on resize.
 * opts: { labels, stacks: [{label, color, values, sign}], ghost, line: {value, label},
 *         highlight, yfmt, onClick, tip(i) }
 */
export function barChart(box, opts) {
  box.classList.add('chart');
  const draw = () => {
    const W = Math.max(box.clientWidth, 280);
    const H = opts.height || 240;
    const n = opts.labels.length;
    const top = (i) => opts.stacks.filter((s) => s.sign >= 0).reduce((a, s) => a + (s.values[i] || 0), 0);
    const bottom = (i) => opts.stacks.filter((s) => s.sign < 0).reduce((a, s) => a + (s.values[i] || 0), 0);
    let hi = 0, lo = 0;
    for (let i = 0; i < n; i++) {
      hi = Math.max(hi, top(i), opts.ghost?.[i] || 0);
      lo = Math.min(lo, -bottom(i));
    }
    if (opts.line?.value != null) hi = Math.max(hi, opts.line.value);
    if (hi === 0 && lo === 0) hi = 1;
    const ys = ticks(lo, hi);
    hi = Math.max(hi, ys[ys.length - 1]);
    lo = Math.min(lo, ys[0]);
    // Decimals the ticks need to tell apart (0.05 steps need two).
    const digits = Math.min(3, Math.max(0, -Math.floor(Math.log10(ys.step) + 1e-9) + (ys.step / 10 ** Math.floor(Math.log10(ys.step)) % 1 ? 1 : 0)));
    const left = 56, right = 8, padTop = opts.line ? 22 : 10, padBottom = 24;
    const pw = W - left - right, ph = H - padTop - padBottom;
    const y = (v) => padTop + ((hi - v) / (hi - lo)) * ph;
    const slot = pw / n, bw = Math.max(1, Math.min(40, slot * 0.72));
    const svg = el('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'bars' });
    if (opts.title) el('title', {}, svg).textContent = opts.title;
    for (const v of ys) {
      el('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: v === 0 ? 'axis' : 'grid' }, svg);
      const tx = el('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, svg);
      tx.textContent = opts.yfmt ? opts.yfmt(v, digits) : v;
    }
    const every = Math.ceil(n / Math.max(1, Math.floor(pw / 46)));
    for (let i = 0; i < n; i++) {
      const x = left + i * slot + (slot - bw) / 2;
      const g = el('g', { class: 'bar' + (i === opts.highlight ? ' hl' : ''), 'data-i': i }, svg);
      el('rect', { x: left + i * slot, y: padTop, width: slot, height: ph, class: 'hit' }, g);
      if (opts.ghost?.[i]) {
        el('rect', { x: x - 1, y: y(opts.ghost[i]), width: bw + 2, height: Math.max(0, y(0) - y(opts.ghost[i])), class: 'ghost' }, g);
      }
      let up = 0, down = 0;
      for (const s of opts.stacks) {
        const v = s.values[i] || 0;
        if (v <= 0) continue;
        const [a, b] = s.sign >= 0 ? [up, up + v] : [-down, -down - v];
        if (s.sign >= 0) up += v; else down += v;
        el('rect', { x, y: y(Math.max(a, b)), width: bw, height: Math.max(0.5, Math.abs(y(a) - y(b))), fill: s.color }, g);
      }
      if (opts.tip) el('title', {}, g).textContent = opts.tip(i);
      if (opts.onClick) g.addEventListener('click', () => opts.onClick(i));
      if (i % every === 0) {
        const tx = el('text', { x: left + i * slot + slot / 2, y: H - 6, 'text-anchor': 'middle', class: 'tick' }, svg);
        tx.textContent = opts.labels[i];
      }
    }
    if (opts.line?.value != null) {
      el('line', { x1: left, x2: W - right, y1: y(opts.line.value), y2: y(opts.line.value), class: 'ref' }, svg);
      const tx = el('text', { x: W - right - 4, y: y(opts.line.value) - 4, 'text-anchor': 'end', class: 'ref-label' }, svg);
      tx.textContent = opts.line.label;
    }
    box.replaceChildren(svg);
    if (opts.legend) {
      const lg = document.createElement('div');
      lg.className = 'legend';
      for (const s of opts.stacks) {
        const i = document.createElement('span');
        const key = document.createElement('i');
        key.style.background = s.color; // set from script: the CSP allows this, unlike an inline style attribute
        i.append(key, s.label);
        lg.append(i);
      }
      if (opts.ghost) {
        const i = document.createElement('span');
        i.innerHTML = '<i class="ghost-key"></i>';
        i.append(opts.ghostLabel || '');
        lg.append(i);
      }
      box.append(lg);
    }
  };
  draw();
  watchWidth(box, draw);
}

/** Calls `draw` when the box's width changes (not its height: that would loop). */
function watchWidth(box, draw) {
  let w = box.clientWidth;
  const ro = new ResizeObserver(() => {
    if (!box.isConnected) return ro.disconnect();
    if (Math.abs(box.clientWidth - w) > 2) {
      w = box.clientWidth;
      draw();
    }
  });
  ro.observe(box);
}

/**
 * The live power chart: `[unix s]`, `[W]`, a sliding window of `seconds`.
 * Returns { push(t, w), count() }.
 */
export function liveChart(box, points, seconds, fmtW, fmtT) {
  const xs = points.map((p) => p[0]);
  const ws = points.map((p) => p[1]);
  const axis = { stroke: css('--muted'), grid: { stroke: css('--grid'), width: 1 }, ticks: { stroke: css('--grid') } };
  const opts = {
    width: Math.max(box.clientWidth, 280),
    height: 220,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, lo, hi) => [Math.min(0, lo), Math.max(100, hi) * 1.1] } },
    axes: [
      { ...axis, values: (u, vals) => vals.map((v) => fmtT(v)) },
      { ...axis, size: 64, values: (u, vals) => vals.map((v) => fmtW(v)) },
    ],
    series: [{}, { stroke: css('--accent'), width: 2, fill: css('--accent-fill'), points: { show: false } }],
  };
  const u = new window.uPlot(opts, [xs, ws], box);
  const keep = () => {
    const cut = xs[xs.length - 1] - seconds;
    while (xs.length && xs[0] < cut) { xs.shift(); ws.shift(); }
  };
  watchWidth(box, () => u.setSize({ width: Math.max(box.clientWidth, 280), height: 220 }));
  return {
    push(t, w) {
      if (xs.length && t <= xs[xs.length - 1]) return;
      xs.push(t); ws.push(w); keep();
      u.setData([xs, ws]);
    },
    count: () => xs.length,
  };
}
