// The pages: Now, History, Capacity, Base load, Meter, Prices. Each builds its content
// into `body`; charts are drawn once `body` is on screen (they need its width).

import { api, h, note, onLive } from './ui.js';
import { barChart, liveChart, css } from './charts.js';
import {
  t, num, power, kwh, m3, money, fmt, time, timeSec, date, dateTime, monthName, localDate, age,
} from './i18n.js';

const after = (body, fn) => (body.mounted ||= []).push(fn);
const card = (title, ...kids) => h('section.card', {}, title ? h('h2', { text: title }) : null, ...kids);
const stat = (label, value, attrs = {}) => h('div.stat', attrs, h('span.label', { text: label }), h('span.value', { text: value }));
const row = (cells, attrs) => h('tr', attrs, cells.map((c, i) => h(i ? 'td' : 'th', typeof c === 'object' && c?.text != null ? c : { text: c })));

/** Calendar arithmetic on `YYYY-MM-DD` strings (no time zone involved). */
function addDays(ymd, n) {
  const [y, m, d] = ymd.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}
function addMonths(ymd, n) {
  const [y, m] = ymd.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1 + n, 1)).toISOString().slice(0, 10);
}
const firstOfMonth = (ymd) => `${ymd.slice(0, 7)}-01`;
const firstOfYear = (ymd) => `${ymd.slice(0, 4)}-01-01`;

// Roll-ups count 0 m³ for meters without gas: only a sub-meter or actual use says gas is there.
const hasGas = (m, usage) => usage?.gas_m3 > 0 || m.submeters.some((s) => s.type === 'gas_meter');
const hasWater = (m, usage) => usage?.water_m3 > 0 || m.submeters.some((s) => s.type === 'water_meter');

// ---------------------------------------------------------------- Now

function direction(w) {
  if (w == null) return { cls: 'idle', label: t('waiting_live'), arrow: '·' };
  if (w > 5) return { cls: 'import', label: t('importing'), arrow: '↓' };
  if (w < -5) return { cls: 'export', label: t('exporting'), arrow: '↑' };
  return { cls: 'idle', label: t('idle'), arrow: '=' };
}

function heroCard(frame) {
  const value = h('div.big');
  const dir = h('div.direction');
  const when = h('div.when');
  const tariff = h('div.muted');
  const box = h('section.card.hero', {}, h('h2', { text: t('net_power') }), value, dir, when, tariff);
  const update = (f) => {
    const w = f?.reading?.active_power_w;
    const d = direction(w);
    box.dataset.direction = d.cls;
    value.textContent = power(w == null ? null : Math.abs(w));
    value.dataset.watts = w ?? '';
    dir.textContent = `${d.arrow} ${d.label}`;
    when.textContent = f ? timeSec(f.timestamp) : '';
    tariff.textContent = f?.reading?.active_tariff ? `${t('tariff')} ${f.reading.active_tariff}` : '';
  };
  update(frame);
  return { box, update };
}

function phasesCard(frame) {
  const box = card(t('phases'));
  const body = h('tbody');
  const table = h('table.grid', {}, h('thead', {}, row(['', t('power'), t('voltage'), t('current')])), body);
  const update = (f) => {
    const r = f?.reading || {};
    const phases = [1, 2, 3].filter((p) => r[`active_power_l${p}_w`] != null || r[`active_voltage_l${p}_v`] != null
      || r[`active_current_l${p}_a`] != null);
    if (!phases.length) {
      box.replaceChildren(h('h2', { text: t('phases') }), note(t('no_phases')));
      box.dataset.state = 'none';
      return;
    }
    box.dataset.state = 'ok';
    body.replaceChildren(...phases.map((p) => row([
      `L${p}`,
      power(r[`active_power_l${p}_w`], true),
      r[`active_voltage_l${p}_v`] != null ? `${num(r[`active_voltage_l${p}_v`], 1)} V` : '–',
      r[`active_current_l${p}_a`] != null ? `${num(r[`active_current_l${p}_a`], 2)} A` : '–',
    ])));
    if (!table.isConnected) box.replaceChildren(h('h2', { text: t('phases') }), table);
  };
  update(frame);
  return { box, update };
}

function todayCard(m, c) {
  const u = c.usage;
  const cur = c.currency;
  const body = h('tbody');
  const add = (label, amount, cost, attrs) => body.append(row([label, amount, { text: money(cost, cur) }], attrs));
  add(t('import'), kwh(u.import_kwh), c.cost.import, { 'data-kind': 'import' });
  add(t('export'), kwh(u.export_kwh), c.cost.export ? -c.cost.export : 0, { 'data-kind': 'export' });
  if (hasGas(m, u)) add(t('gas'), m3(u.gas_m3), c.cost.gas, { 'data-kind': 'gas' });
  if (hasWater(m, u)) add(t('water'), m3(u.water_m3), c.cost.water, { 'data-kind': 'water' });
  if (u.heat_gj > 0 || m.submeters.some((s) => s.type === 'heat_meter')) add(t('heat'), `${num(u.heat_gj, 3)} GJ`, c.cost.heat);
  if (c.cost.fixed) add(t('fixed'), '', c.cost.fixed);
  body.append(h('tr.total', {}, h('th', { text: t('net_cost') }), h('td'), h('td', { text: money(c.cost.total, cur) })));
  return card(t('today'), h('table.grid', {}, body), hasGas(m, u) ? null : note(t('no_gas')));
}

async function now(body, params, m) {
  const [frames, recent, today] = await Promise.all([
    api('/api/v1/now'),
    api('/api/v1/power', { meter: m.id, minutes: 15 }),
    api('/api/v1/cost', { meter: m.id, from: localDate(new Date()) }),
  ]);
  const frame = frames.find((f) => f.meter === m.id);
  if (frame) {
    const ageS = Date.now() / 1000 - Date.parse(frame.timestamp) / 1000;
    if (ageS > 300) body.append(note(t('stale', { age: age(ageS) }), 'warn'));
  }
  const hero = heroCard(frame);
  const phases = phasesCard(frame);
  const chartBox = h('div.live-chart', { id: 'live-chart' });
  const waiting = recent.points.length ? null : note(t('waiting_live'));
  const live = card(t('last_15'), waiting, chartBox);
  live.classList.add('full');
  body.append(h('div.cards', {}, hero.box, phases.box, todayCard(m, today), live));
  after(body, () => {
    const chart = liveChart(chartBox, recent.points, 900, (v) => power(v), (v) => time(v));
    chartBox.dataset.points = chart.count();
    onLive((f) => {
      hero.update(f);
      phases.update(f);
      const w = f.reading?.active_power_w;
      if (w != null) chart.push(Date.parse(f.timestamp) / 1000, w);
      chartBox.dataset.points = chart.count();
      waiting?.remove();
    });
  });
}

// ---------------------------------------------------------------- History

const STEPS = {
  '1h': { label: 'day', span: (d) => [d, addDays(d, 1)], prev: (d) => addDays(d, -1), next: (d) => addDays(d, 1), anchor: (d) => d },
  '15m': { label: 'quarter_hours', span: (d) => [d, addDays(d, 1)], prev: (d) => addDays(d, -1), next: (d) => addDays(d, 1), anchor: (d) => d },
  '1d': { label: 'month', span: (d) => [d, addMonths(d, 1)], prev: (d) => addMonths(d, -1), next: (d) => addMonths(d, 1), anchor: firstOfMonth },
  '1mo': { label: 'year', span: (d) => [d, `${+d.slice(0, 4) + 1}-01-01`], prev: (d) => `${+d.slice(0, 4) - 1}-01-01`, next: (d) => `${+d.slice(0, 4) + 1}-01-01`, anchor: firstOfYear },
};

function periodTitle(step, d) {
  const noon = `${d}T12:00:00Z`;
  if (step === '1d') return monthName(noon);
  if (step === '1mo') return d.slice(0, 4);
  return date(noon);
}

function bucketLabel(step, b) {
  if (step === '15m') return time(b.start);
  if (step === '1h') return fmt(b.start, { hour: '2-digit' });
  if (step === '1d') return fmt(b.start, { day: 'numeric' });
  return fmt(b.start, { month: 'short' });
}

const sum = (bs, k) => {
  const v = bs.map((b) => b[k]).filter((x) => x != null);
  return v.length ? v.reduce((a, x) => a + x, 0) : null;
};

function change(a, b) {
  if (a == null || b == null || b === 0) return '';
  const p = ((a - b) / Math.abs(b)) * 100;
  return `${p > 0 ? '+' : ''}${num(p, 0)}\u00a0%`;
}

async function history(body, params, m) {
  const step = STEPS[params.get('step')] ? params.get('step') : '1h';
  const S = STEPS[step];
  const d = S.anchor(params.get('date') || localDate(new Date()));
  const [from, to] = S.span(d);
  const [pfrom, pto] = S.span(S.prev(d));
  const link = (st, dd, extra = '') => `#/history?step=${st}&date=${dd}${extra}`;
  const [cur, prev, cost, pcost] = await Promise.all([
    api('/api/v1/series', { meter: m.id, from, to, step }),
    api('/api/v1/series', { meter: m.id, from: pfrom, to: pto, step }),
    api('/api/v1/cost', { meter: m.id, from, to }),
    api('/api/v1/cost', { meter: m.id, from: pfrom, to: pto }),
  ]);
  const tabs = h('div.seg', { role: 'tablist' }, Object.keys(STEPS).map((st) => h('a', {
    href: link(st, st === '1mo' ? firstOfYear(d) : st === '1d' ? firstOfMonth(d) : d),
    'aria-current': st === step ? 'page' : null, text: t(STEPS[st].label),
  })));
  const picker = h('input', { type: 'date', value: d, 'aria-label': t('day'),
    onchange: (e) => { if (e.target.value) location.hash = link(step, S.anchor(e.target.value)); } });
  body.append(h('div.toolbar', {}, tabs, h('div.nav', {},
    h('a.btn', { href: link(step, S.prev(d)), id: 'prev', 'aria-label': t('prev'), text: '‹' }),
    h('h1', { id: 'period', 'data-date': d, text: periodTitle(step, d) }),
    h('a.btn', { href: link(step, S.next(d)), id: 'next', 'aria-label': t('next'), text: '›' }),
    picker)));

  const bs = cur.buckets;
  const any = bs.some((b) => b.samples > 0 || b.import_kwh != null);
  if (!any) body.append(note(t('no_data')));
  const quarter = step === '15m';
  const k = quarter ? 4 : 1; // kWh per quarter-hour × 4 = average kW
  // Energy not split per tariff (meters without tariffs); rounding leftovers are not.
  const rest = (b, total, parts) => {
    const r = (b[total] || 0) - parts.reduce((a, p) => a + (b[p] || 0), 0);
    return r > 0.005 ? r : 0;
  };
  const stacks = [
    { label: `${t('import')} T1`, color: css('--imp1'), sign: 1, values: bs.map((b) => (b.import_t1_kwh || 0) * k) },
    { label: `${t('import')} T2`, color: css('--imp2'), sign: 1, values: bs.map((b) => (b.import_t2_kwh || 0) * k) },
    { label: t('import'), color: css('--imp0'), sign: 1, values: bs.map((b) => rest(b, 'import_kwh', ['import_t1_kwh', 'import_t2_kwh']) * k) },
    { label: `${t('export')} T1`, color: css('--exp1'), sign: -1, values: bs.map((b) => (b.export_t1_kwh || 0) * k) },
    { label: `${t('export')} T2`, color: css('--exp2'), sign: -1, values: bs.map((b) => (b.export_t2_kwh || 0) * k) },
    { label: t('export'), color: css('--exp0'), sign: -1, values: bs.map((b) => rest(b, 'export_kwh', ['export_t1_kwh', 'export_t2_kwh']) * k) },
  ].filter((s) => s.values.some((v) => v > 0));
  const unit = quarter ? 'kW' : 'kWh';
  let hl = -1;
  if (quarter) {
    const peak = params.get('peak');
    hl = peak ? bs.findIndex((b) => b.start === peak) : -1;
  }
  const chartBox = h('div', { id: 'history-chart', 'data-buckets': bs.length });
  const drill = step === '1mo' ? (i) => link('1d', bs[i].start && localDate(bs[i].start))
    : step === '1d' ? (i) => link('1h', localDate(bs[i].start)) : null;
  body.append(card(quarter ? `${t('avg_power')} · kW` : `${t('electricity')} · kWh`, chartBox));
  after(body, () => barChart(chartBox, {
    labels: bs.map((b) => bucketLabel(step, b)),
    stacks,
    legend: true,
    ghost: quarter ? null : prev.buckets.map((b) => b.import_kwh || 0),
    ghostLabel: t('compare', { period: t('previous_period') }),
    highlight: hl,
    yfmt: (v, d) => num(v, d),
    tip: (i) => `${bucketLabel(step, bs[i])}: ${t('import')} ${num((bs[i].import_kwh || 0) * k, 3)} ${unit}, ${t('export')} ${num((bs[i].export_kwh || 0) * k, 3)} ${unit}`,
    onClick: drill ? (i) => { location.hash = drill(i); } : null,
  }));

  const extra = [['gas', 'gas_m3', '--gas'], ['water', 'water_m3', '--water']]
    .filter(([kind, key]) => (kind === 'gas' ? hasGas(m, cost.usage) : hasWater(m, cost.usage)) && bs.some((b) => b[key] != null));
  for (const [kind, key, color] of extra) {
    const box = h('div', { id: `${kind}-chart` });
    body.append(card(`${t(kind)} · m³`, box));
    after(body, () => barChart(box, {
      labels: bs.map((b) => bucketLabel(step, b)), height: 160,
      stacks: [{ label: t(kind), color: css(color), sign: 1, values: bs.map((b) => b[key] || 0) }],
      ghost: prev.buckets.map((b) => b[key] || 0),
      yfmt: (v, d) => num(v, d),
      tip: (i) => `${bucketLabel(step, bs[i])}: ${num(bs[i][key], 3)} m³`,
    }));
  }
  if (!hasGas(m, cost.usage)) body.append(note(t('no_gas')));

  const pb = prev.buckets;
  const prevData = pb.some((b) => b.samples > 0);
  const tbody = h('tbody');
  const line = (label, key, f, kind) => {
    const a = sum(bs, key), b = prevData ? sum(pb, key) : null;
    if ((a == null && b == null) || (!a && !b && kind !== 'import')) return;
    tbody.append(h('tr', { 'data-kind': kind }, h('th', { text: label }),
      h('td', { text: f(a), 'data-value': a ?? '' }), h('td', { text: f(b), 'data-value': b ?? '' }),
      h('td', { text: change(a, b) })));
  };
  line(`${t('import')} T1`, 'import_t1_kwh', kwh, 'import_t1');
  line(`${t('import')} T2`, 'import_t2_kwh', kwh, 'import_t2');
  line(t('import'), 'import_kwh', kwh, 'import');
  line(t('export'), 'export_kwh', kwh, 'export');
  line(t('gas'), 'gas_m3', m3, 'gas');
  line(t('water'), 'water_m3', m3, 'water');
  const cu = cost.currency;
  tbody.append(h('tr.total', { 'data-kind': 'cost' }, h('th', { text: t('net_cost') }),
    h('td', { text: money(cost.cost.total, cu) }), h('td', { text: prevData ? money(pcost.cost.total, cu) : '–' }),
    h('td', { text: change(cost.cost.total, pcost.cost.total) })));
  body.append(card(t('total'), h('table.grid.totals', { id: 'totals' },
    h('thead', {}, row(['', periodTitle(step, d), periodTitle(step, S.prev(d)), t('change')])), tbody)));
}

// ---------------------------------------------------------------- Capacity

function currentQuarter(m, frame, body) {
  const avg = h('div.big', { id: 'quarter-avg' });
  const proj = h('div.muted', { id: 'quarter-proj' });
  const meterAvg = h('div.muted');
  const box = card(t('running_avg'), avg, proj, meterAvg);
  const st = { qs: null, wh: 0, reg: null };
  const show = (nowS, w, reported) => {
    const elapsed = Math.max(1, nowS - st.qs);
    const runW = (st.wh * 3600) / elapsed;
    const endW = ((st.wh + ((w ?? 0) * Math.max(0, 900 - elapsed)) / 3600) * 4);
    avg.textContent = power(runW);
    proj.textContent = `${t('projected', { time: time(st.qs + 900) })}: ${power(endW)}`;
    meterAvg.textContent = reported != null ? `${t('meter_avg')}: ${power(reported)}` : '';
  };
  const start = async () => {
    const nowS = frame ? Date.parse(frame.timestamp) / 1000 : Date.now() / 1000;
    st.qs = Math.floor(nowS / 900) * 900;
    const s = await api('/api/v1/series', { meter: m.id, step: '15m', from: new Date(st.qs * 1000).toISOString(), to: new Date((st.qs + 900) * 1000).toISOString() });
    st.wh = (s.buckets[0]?.import_kwh || 0) * 1000;
    st.reg = frame?.reading?.total_power_import_kwh ?? null;
    show(nowS, frame?.reading?.active_power_w, frame?.reading?.active_power_average_w);
  };
  after(body, () => onLive((f) => {
    const ts = Date.parse(f.timestamp) / 1000;
    const reg = f.reading?.total_power_import_kwh;
    const qs = Math.floor(ts / 900) * 900;
    if (qs !== st.qs) { st.qs = qs; st.wh = 0; }
    else if (reg != null && st.reg != null && reg >= st.reg) st.wh += (reg - st.reg) * 1000;
    st.reg = reg ?? st.reg;
    show(ts, f.reading?.active_power_w, f.reading?.active_power_average_w);
  }));
  return { box, start };
}

async function capacity(body, params, m) {
  const month = /^\d{4}-\d{2}$/.test(params.get('month') || '') ? params.get('month') : null;
  const [p, prices, frames] = await Promise.all([
    api('/api/v1/peaks', { meter: m.id, month }), api('/api/v1/prices'), api('/api/v1/now'),
  ]);
  const frame = frames.find((f) => f.meter === m.id);
  const q = currentQuarter(m, frame, body);
  await q.start();
  const cu = prices.currency;

  const peakBox = card(t('month_peak', { month: monthName(`${p.month}-15T12:00:00Z`) }));
  if (p.peak) {
    const day = localDate(p.peak.start);
    peakBox.append(h('div.big', { id: 'month-peak', 'data-watts': p.peak.average_power_w, text: power(p.peak.average_power_w) }),
      h('div.muted', { text: `${dateTime(p.peak.start)}–${time(p.peak.end)}` }),
      h('a.btn', { id: 'peak-link', 'data-date': day, href: `#/history?step=15m&date=${day}&peak=${encodeURIComponent(p.peak.start)}`, text: `${t('peak_link')} →` }));
  } else peakBox.append(note(t('no_data')));

  const kw = p.rolling_12_month_average_w != null ? p.rolling_12_month_average_w / 1000 : null;
  const billedKw = kw != null ? Math.max(kw, prices.capacity_min_kw) : null;
  const costBox = card(t('peak_cost'),
    h('div.big', { id: 'capacity-cost', text: billedKw != null ? money(billedKw * prices.capacity_kw_year, cu) : '–' }),
    h('div.muted', { text: kw != null ? `${t('rolling')}: ${num(kw, 2)} kW (${t('billed', { min: `${num(prices.capacity_min_kw, 1)} kW` })}) × ${money(prices.capacity_kw_year, cu)}/kW` : t('no_data') }));
  body.append(h('div.cards', {}, q.box, peakBox, costBox));

  const chartBox = h('div', { id: 'months-chart' });
  body.append(card(t('months_13'), chartBox));
  after(body, () => barChart(chartBox, {
    labels: p.months.map((x) => fmt(`${x.month}-15T12:00:00Z`, { month: 'short' })),
    stacks: [{ label: t('month_peak', { month: '' }), color: css('--imp2'), sign: 1, values: p.months.map((x) => (x.peak_w || 0) / 1000) }],
    highlight: p.months.length - 1,
    line: kw != null ? { value: kw, label: `${t('rolling')} ${num(kw, 2)} kW` } : null,
    yfmt: (v, d) => `${num(v, d)} kW`,
    tip: (i) => `${p.months[i].month}: ${p.months[i].peak_w != null ? power(p.months[i].peak_w) : '–'}`,
    onClick: (i) => { if (p.months[i].start) location.hash = `#/history?step=15m&date=${localDate(p.months[i].start)}&peak=${encodeURIComponent(p.months[i].start)}`; },
  }));

  // The meter's own registers next to ours.
  const rep = p.meter_reported || {};
  const regs = card(t('meter_says'));
  regs.id = 'meter-registers';
  if (!rep['1-0:1.6.0'] && !rep['0-0:98.1.0']) regs.append(note(t('no_capacity_regs')));
  else {
    const tb = h('tbody');
    const r16 = rep['1-0:1.6.0'];
    if (r16) tb.append(row([t('meter_peak'), `${power(r16.value * 1000)} · ${r16.timestamp ? dateTime(r16.timestamp) : ''}`,
      p.peak ? `${power(p.peak.average_power_w)} · ${dateTime(p.peak.start)}` : '–']));
    const entries = rep['0-0:98.1.0']?.entries || [];
    if (entries.length) tb.append(h('tr.sub', {}, h('th', { colspan: '3', text: t('meter_history') })));
    for (const e of entries) {
      const mo = e.timestamp ? localDate(e.timestamp).slice(0, 7) : null;
      const ours = p.months.find((x) => x.month === mo);
      tb.append(row([mo ? monthName(`${mo}-15T12:00:00Z`) : '–', `${power(e.value * 1000)}`, ours?.peak_w != null ? power(ours.peak_w) : '–']));
    }
    regs.append(h('table.grid.ids', {}, h('thead', {}, row(['', t('meter_says'), t('computed')])), tb));
  }
  body.append(regs);
}

// ---------------------------------------------------------------- Base load

async function baseload(body, params, m) {
  const b = await api('/api/v1/baseload', { meter: m.id });
  body.append(h('p.muted', { text: t('baseload_help') }));
  if (!b.nights.length) {
    body.append(note(t('no_nights')));
    return;
  }
  body.append(h('div.cards', {},
    card(t('typical'), h('div.big', { id: 'typical', text: power(b.typical_w) })),
    card(t('per_year'), h('div.big', { text: money(b.yearly_cost, b.currency) }), h('div.muted', { text: kwh(b.yearly_kwh, 0) }))));
  const box = h('div', { id: 'baseload-chart', 'data-nights': b.nights.length });
  body.append(card(t('per_night'), box));
  after(body, () => barChart(box, {
    labels: b.nights.map((n) => fmt(`${n.date}T12:00:00Z`, { day: 'numeric', month: 'short' })),
    stacks: [{ label: t('baseload'), color: css('--accent'), sign: 1, values: b.nights.map((n) => n.power_w) }],
    line: { value: b.typical_w, label: `${t('typical')} ${power(b.typical_w)}` },
    yfmt: (v, d) => `${num(v, d)} W`,
    tip: (i) => `${date(b.nights[i].start)} ${time(b.nights[i].start)}: ${power(b.nights[i].power_w)}`,
    onClick: (i) => { location.hash = `#/history?step=15m&date=${b.nights[i].date}`; },
  }));
}

// ---------------------------------------------------------------- Meter

async function meter(body, params, m) {
  const [status, raw] = await Promise.all([
    api('/api/v1/status'),
    api('/api/v1/telegram', { meter: m.id }).catch(() => null),
  ]);
  const info = h('tbody', {},
    row([t('equipment'), m.id]), row([t('dialect'), m.dialect]), row([t('source'), m.source]),
    row([t('first_seen'), dateTime(m.first_seen)]), row([t('last_seen'), dateTime(m.last_seen)]),
    row([t('version'), status.version]));
  body.append(h('div.cards', {}, card(t('meter'), h('table.grid.ids', { id: 'meter-info' }, info)),
    card(t('submeters'), m.submeters.length
      ? h('table.grid.ids', {}, h('thead', {}, row([t('channel'), t('type'), t('equipment')])),
        h('tbody', {}, m.submeters.map((s) => row([String(s.channel), s.type, s.unique_id || '–']))))
      : note(t('none')))));
  const src = h('tbody', {}, status.sources.map((s) => {
    const causes = Object.entries(s.rejected);
    return row([s.name, { text: s.connected ? t('connected') : `${t('not_connected')}: ${s.note}`, class: s.connected ? 'ok' : 'bad' },
      num(s.accepted), causes.length ? causes.map(([c, n]) => `${c}: ${num(n)}`).join(', ') : '0']);
  }));
  body.append(card(t('sources'), h('div.scroll', {}, h('table.grid.ids', { id: 'sources' },
    h('thead', {}, row(['', t('state'), t('accepted'), t('rejected')])), src))));
  body.append(card(t('last_telegram'), raw ? h('pre.telegram', { id: 'telegram', text: raw }) : note(t('none'))));
}

// ---------------------------------------------------------------- Prices

async function prices(body) {
  const p = await api('/api/v1/prices');
  const field = (key, label, value, step = '0.0001') => h('label', {}, h('span', { text: label }),
    h('input', { name: key, type: 'number', min: '0', step, value: String(value), inputmode: 'decimal' }));
  const tariffs = (key, label, ts) => ts.map((i) => field(`${key}.${i}`, `${label} · T${i + 1}`, p[key][i]));
  const group = (title, ...kids) => h('fieldset', {}, h('legend', { text: title }), h('div.fields', {}, ...kids));
  const msg = h('p.msg', { role: 'status' });
  const more = p.import_kwh.slice(2).some((v, i) => v !== p.import_kwh[0] || p.export_kwh[i + 2] !== p.export_kwh[0]);
  const form = h('form.prices', { id: 'prices-form' },
    group(t('electricity'),
      h('label', {}, h('span', { text: t('currency') }), h('input', { name: 'currency', value: p.currency, maxlength: '3', pattern: '[A-Za-z]{3}' })),
      tariffs('import_kwh', t('import_price'), [0, 1]), tariffs('export_kwh', t('export_price'), [0, 1]),
      field('daily', t('daily'), p.daily)),
    h('details', more ? { open: '' } : {}, h('summary', { text: t('tariffs_34') }),
      h('div.fields', {}, tariffs('import_kwh', t('import_price'), [2, 3]), tariffs('export_kwh', t('export_price'), [2, 3]))),
    group(`${t('gas')} · ${t('water')} · ${t('heat')}`,
      field('gas_m3', t('gas_price'), p.gas_m3), field('water_m3', t('water_price'), p.water_m3),
      field('heat_gj', t('heat_price'), p.heat_gj)),
    group(t('capacity'),
      field('capacity_kw_year', t('capacity_price'), p.capacity_kw_year, '0.01'),
      field('capacity_min_kw', t('capacity_min'), p.capacity_min_kw, '0.1')),
    h('div.actions', {}, h('button', { type: 'submit', text: t('save') }), msg));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = { ...p, import_kwh: [...p.import_kwh], export_kwh: [...p.export_kwh] };
    for (const [k, v] of new FormData(form)) {
      const [key, i] = k.split('.');
      if (key === 'currency') out.currency = String(v).toUpperCase();
      else if (i != null) out[key][+i] = Number(v);
      else out[key] = Number(v);
    }
    try {
      await api('/api/v1/prices', {}, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(out) });
      msg.textContent = t('saved');
      msg.className = 'msg ok';
    } catch (err) {
      msg.textContent = t('error', { msg: err.message });
      msg.className = 'msg bad';
    }
  });
  body.append(card(t('prices'), h('p.muted', { text: t('prices_help') }), form));
}

export const PAGES = { now, history, capacity, baseload, meter, prices };
