// Browser tests of the dashboard: Debian's Chromium, driven by playwright-core, against
// a real `meterkast run` with a simulated Belgian meter (three weeks of history, then
// one telegram a second) and a second, imported meter without phases or gas.
//
//   MK_BIN=target/release/meterkast node --test crates/meterkast/web/e2e/
//
// Screenshots of every page at phone and desktop width, light and dark, go to
// target/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const BIN = process.env.MK_BIN ? path.resolve(ROOT, process.env.MK_BIN)
  : [path.join(ROOT, 'target/release/meterkast'), path.join(ROOT, 'target/debug/meterkast')].find(fs.existsSync);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'target/screenshots');
const PAGES = ['now', 'history', 'capacity', 'baseload', 'meter', 'prices'];
// Every page, and History's month and year views too.
const ROUTES = [...PAGES, 'history?step=1d', 'history?step=1mo'];
const SIZES = { phone: { width: 390, height: 844 }, desktop: { width: 1366, height: 900 } };
const BACKFILL = process.env.MK_BACKFILL || '21d';
const PLAIN_ID = 'E0000000000000000000000000042';

// ------------------------------------------------------------------ helpers

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function crc16(bytes) {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** Local (Central European) clock parts and the DSMR season flag of a unix time. */
function cet(t) {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/Amsterdam', year: '2-digit', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(t * 1000)).map((x) => [x.type, x.value]));
  const local = Date.UTC(2000 + +p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) / 1000;
  return { ...p, flag: local - t === 7200 ? 'S' : 'W' };
}

/** A DSMR 5 telegram with one phase total only and no gas: the plainest meter. */
function telegram(t, t1Wh, t2Wh, w, tariff) {
  const c = cet(t);
  const hex = Buffer.from(PLAIN_ID).toString('hex').toUpperCase();
  const reg = (wh) => `${String(Math.floor(wh / 1000)).padStart(6, '0')}.${String(Math.floor(wh % 1000)).padStart(3, '0')}`;
  const body = `/ISK5\\2M550T-1012\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(${c.year}${c.month}${c.day}${c.hour}${c.minute}${c.second}${c.flag})\r\n`
    + `0-0:96.1.1(${hex})\r\n1-0:1.8.1(${reg(t1Wh)}*kWh)\r\n1-0:1.8.2(${reg(t2Wh)}*kWh)\r\n`
    + '1-0:2.8.1(000000.000*kWh)\r\n1-0:2.8.2(000000.000*kWh)\r\n'
    + `0-0:96.14.0(000${tariff})\r\n1-0:1.7.0(${(w / 1000).toFixed(3).padStart(6, '0')}*kW)\r\n1-0:2.7.0(00.000*kW)\r\n!`;
  const bytes = Buffer.from(body, 'latin1');
  return body + crc16(bytes).toString(16).toUpperCase().padStart(4, '0') + '\r\n';
}

/** Three days of the plain meter, one telegram a minute, ending now. */
function plainCapture(file) {
  const end = Math.floor(Date.now() / 1000 / 60) * 60;
  let t1 = 1_234_567, t2 = 2_345_678;
  const out = [];
  for (let t = end - 3 * 86400; t <= end; t += 60) {
    const hour = +cet(t).hour;
    const w = 250 + (hour >= 17 && hour < 20 ? 1500 : 0) + (hour >= 7 && hour < 9 ? 800 : 0);
    const tariff = hour >= 7 && hour < 23 ? 2 : 1;
    out.push(telegram(t, t1, t2, w, tariff));
    if (tariff === 1) t1 += (w * 60) / 3600; else t2 += (w * 60) / 3600;
  }
  fs.writeFileSync(file, out.join(''));
}

class Daemon {
  static async start(dir, sources, extra = []) {
    const d = new Daemon();
    d.port = await freePort();
    d.base = `http://127.0.0.1:${d.port}`;
    const args = ['run', '--db', path.join(dir, 'meterkast.db'), '--http', `127.0.0.1:${d.port}`, '--no-mdns'];
    for (const s of sources) args.push('--source', s);
    args.push(...extra);
    d.log = fs.openSync(path.join(dir, 'daemon.log'), 'a');
    d.proc = spawn(BIN, args, { stdio: ['ignore', d.log, d.log] });
    for (let i = 0; i < 200; i++) {
      try { if ((await fetch(`${d.base}/healthz`)).ok) return d; } catch { /* not yet */ }
      await sleep(100);
    }
    throw new Error(`meterkast did not answer; see ${path.join(dir, 'daemon.log')}`);
  }

  async json(p) {
    const r = await fetch(this.base + p);
    assert.ok(r.ok, `${p}: ${r.status} ${await r.clone().text()}`);
    return r.json();
  }

  stop() { this.proc.kill('SIGTERM'); }
}

// ------------------------------------------------------------------ setup

let dir, daemon, browser, meterA;

before(async () => {
  assert.ok(BIN && fs.existsSync(BIN), 'build meterkast first (cargo build --release -p meterkast) or set MK_BIN');
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install -y chromium`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meterkast-e2e-'));
  fs.mkdirSync(SHOTS, { recursive: true });
  const capture = path.join(dir, 'plain.txt');
  plainCapture(capture);
  execFileSync(BIN, ['import', '--db', path.join(dir, 'meterkast.db'), capture], { stdio: 'ignore' });
  daemon = await Daemon.start(dir, [`sim://be?seed=3&backfill=${BACKFILL}`]);
  // Wait until the simulated meter's history is in and it runs in real time.
  for (let i = 0; ; i++) {
    const ms = await daemon.json('/api/v1/meters');
    meterA = ms.find((m) => m.id !== Buffer.from(PLAIN_ID).toString('hex').toUpperCase() && m.id !== PLAIN_ID);
    if (meterA && Date.now() - Date.parse(meterA.last_seen) < 10_000) break;
    assert.ok(i < 600, 'the simulated backfill did not catch up within 10 minutes');
    await sleep(1000);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  daemon?.stop();
  if (dir && !process.env.MK_KEEP) fs.rmSync(dir, { recursive: true, force: true });
});

/** A page that records console errors and uncaught exceptions. */
async function open(ctxOpts = {}, meter = meterA?.id) {
  const ctx = await browser.newContext({ viewport: SIZES.desktop, locale: 'en-US', ...ctxOpts });
  if (meter) await ctx.addInitScript((m) => localStorage.setItem('mk-meter', m), meter);
  const page = await ctx.newPage();
  page.errors = [];
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
  return page;
}

/** Goes to a page of the dashboard and waits until it has rendered. */
async function visit(page, base, hash) {
  const before = await page.evaluate(() => document.getElementById('view')?.dataset.ready).catch(() => undefined);
  if (page.url().startsWith(base)) await page.evaluate((h) => { location.hash = h; }, hash);
  else await page.goto(`${base}/${hash}`);
  await page.waitForFunction((b) => {
    const v = document.getElementById('view');
    return v && v.getAttribute('aria-busy') === 'false' && v.dataset.ready && v.dataset.ready !== b;
  }, before, { timeout: 15_000 });
}

// ------------------------------------------------------------------ tests

test('every page renders at phone and desktop width, light and dark, with no errors', async () => {
  for (const [size, viewport] of Object.entries(SIZES)) {
    for (const scheme of ['light', 'dark']) {
      const page = await open({ viewport, colorScheme: scheme });
      for (const route of ROUTES) {
        const name = route.replace(/\?step=/, '-');
        await visit(page, daemon.base, `#/${route}`);
        assert.equal(await page.locator('#view .note.warn').count(), 0,
          `${name}: ${await page.locator('#view .note.warn').allTextContents()}`);
        await page.screenshot({ path: path.join(SHOTS, `${name}-${size}-${scheme}.png`), fullPage: true });
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= viewport.width, `${name} at ${size} is ${width}px wide: it scrolls sideways`);
      }
      assert.deepEqual(page.errors, []);
      await page.context().close();
    }
  }
});

test('the first load stays under 300 KB', async () => {
  const page = await open();
  let total = 0;
  const pending = [];
  page.on('requestfinished', (req) => {
    if (req.url().includes('/api/v1/live')) return;
    pending.push(req.sizes().then((s) => { total += s.responseBodySize + s.responseHeadersSize; }));
  });
  await visit(page, daemon.base, '#/now');
  await page.waitForLoadState('networkidle').catch(() => {});
  await Promise.all(pending);
  console.log(`first load of the Now page: ${(total / 1024).toFixed(1)} KiB transferred`);
  assert.ok(total > 50_000 && total < 300_000, `${total} bytes`);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the live chart gains points within 5 seconds, from the event stream', async () => {
  const page = await open();
  await visit(page, daemon.base, '#/now');
  const points = () => page.$eval('#live-chart', (e) => Number(e.dataset.points));
  const first = await points();
  assert.ok(first > 0, 'the chart starts with the stored last 15 minutes');
  const shown = await page.$eval('.hero .big', (e) => e.textContent);
  assert.match(shown, /\d (k?W)$/);
  await page.waitForFunction((n) => Number(document.getElementById('live-chart').dataset.points) > n, first, { timeout: 5000 });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a HomeWizard identify request flashes a notice on the Meter page', async () => {
  const page = await open();
  await visit(page, daemon.base, '#/meter');
  assert.equal(await page.locator('#identify').count(), 0);
  // Until the page's event stream is open an identify could go unseen: ask until it shows.
  for (let i = 0; i < 20 && !(await page.locator('#identify').count()); i++) {
    const r = await fetch(`${daemon.base}/api/v1/identify`, { method: 'PUT' });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { identify: 'ok' });
    await sleep(500);
  }
  const n = page.locator('#view #identify.note.flash');
  await n.waitFor({ timeout: 5000 });
  assert.match(await n.textContent(), /HomeWizard/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("the capacity page's peak link opens that day's quarter-hours with the peak marked", async () => {
  const peaks = await daemon.json(`/api/v1/peaks?meter=${meterA.id}`);
  assert.ok(peaks.peak, 'the simulated month has a peak');
  const page = await open();
  await visit(page, daemon.base, '#/capacity');
  const shownW = Number(await page.$eval('#month-peak', (e) => e.dataset.watts));
  assert.equal(shownW, peaks.peak.average_power_w);
  const day = await page.$eval('#peak-link', (e) => e.dataset.date);
  const ready = await page.evaluate(() => document.getElementById('view').dataset.ready);
  await page.click('#peak-link');
  await page.waitForFunction((b) => document.getElementById('view').dataset.ready !== b
    && document.getElementById('view').getAttribute('aria-busy') === 'false', ready);
  assert.match(page.url(), new RegExp(`step=15m&date=${day}`));
  assert.equal(await page.$eval('#period', (e) => e.dataset.date), day);
  const series = await daemon.json(`/api/v1/series?meter=${meterA.id}&from=${day}&step=15m`);
  const hl = Number(await page.$eval('#history-chart .bar.hl', (e) => e.dataset.i));
  assert.equal(series.buckets[hl].start, peaks.peak.start);
  assert.ok(Math.abs(series.buckets[hl].import_kwh * 4000 - peaks.peak.average_power_w) < 1e-6);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the history page shows the imported data, with totals equal to the API', async () => {
  const plain = (await daemon.json('/api/v1/meters')).find((m) => m.id !== meterA.id);
  const page = await open({}, plain.id);
  const day = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Brussels' }).format(new Date(Date.now() - 86400_000));
  await visit(page, daemon.base, `#/history?step=1h&date=${day}`);
  const series = await daemon.json(`/api/v1/series?meter=${plain.id}&from=${day}&step=1h`);
  const sum = (k) => series.buckets.reduce((a, b) => a + (b[k] || 0), 0);
  assert.ok(sum('import_kwh') > 5, 'a whole imported day');
  assert.equal(await page.locator('#history-chart .bar').count(), series.buckets.length);
  for (const [kind, key] of [['import', 'import_kwh'], ['import_t1', 'import_t1_kwh'], ['import_t2', 'import_t2_kwh']]) {
    const cell = page.locator(`#totals tr[data-kind=${kind}] td`).first();
    assert.ok(Math.abs(Number(await cell.getAttribute('data-value')) - sum(key)) < 1e-6, kind);
    const text = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(sum(key));
    assert.equal(await cell.textContent(), `${text} kWh`);
  }
  // Previous and next move by a day.
  await page.click('#prev');
  await page.waitForFunction((d) => document.getElementById('period')?.dataset.date !== d, day);
  assert.notEqual(await page.$eval('#period', (e) => e.dataset.date), day);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('a meter without phases or gas says so; two meters get a picker', async () => {
  const plain = (await daemon.json('/api/v1/meters')).find((m) => m.id !== meterA.id);
  const page = await open({}, plain.id);
  await visit(page, daemon.base, '#/now');
  assert.ok(await page.isVisible('#meter'), 'the meter picker shows with two meters');
  assert.equal(await page.$eval('.card[data-state]', (e) => e.dataset.state), 'none');
  const notes = (await page.locator('#view .note').allTextContents()).join(' | ');
  assert.match(notes, /does not report per-phase values/);
  assert.match(notes, /No gas meter/);
  await page.screenshot({ path: path.join(SHOTS, 'now-plain-meter-desktop-light.png'), fullPage: true });
  // The capacity page says the meter has no capacity registers of its own.
  await visit(page, daemon.base, '#/capacity');
  assert.match(await page.textContent('#meter-registers'), /does not report capacity-tariff registers/);
  // Switching meters in the picker re-renders for the other meter.
  await page.selectOption('#meter', meterA.id);
  await page.waitForFunction(() => document.querySelector('#meter-registers table'));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('Dutch from the browser language, and prices edited in the page are kept', async () => {
  const page = await open({ locale: 'nl-NL' });
  await visit(page, daemon.base, '#/prices');
  assert.equal(await page.textContent('nav a[data-page=now]'), 'Nu');
  // The theme toggle flips light and dark, and the choice is kept.
  const theme = () => page.evaluate(() => document.documentElement.dataset.theme);
  const was = await theme();
  const ready = await page.evaluate(() => document.getElementById('view').dataset.ready);
  await page.click('#theme');
  await page.waitForFunction((w) => document.documentElement.dataset.theme !== w, was);
  assert.equal(await page.evaluate(() => localStorage.getItem('mk-theme')), await theme());
  // A new theme renders the page again: fill the form only once that is done, or a
  // slow machine fills the old form and saves the new one's stored values.
  await page.waitForFunction((b) => {
    const v = document.getElementById('view');
    return v.getAttribute('aria-busy') === 'false' && v.dataset.ready && v.dataset.ready !== b;
  }, ready, { timeout: 15_000 });
  await page.fill('input[name=gas_m3]', '1.5');
  await page.click('#prices-form button[type=submit]');
  await page.waitForSelector('.msg.ok');
  assert.equal((await daemon.json('/api/v1/prices')).gas_m3, 1.5);
  await page.fill('input[name=currency]', 'E1');
  await page.evaluate(() => document.querySelector('input[name=currency]').removeAttribute('pattern'));
  await page.click('#prices-form button[type=submit]');
  await page.waitForSelector('.msg.bad');
  assert.match(await page.textContent('.msg.bad'), /three-letter/);
  assert.equal((await daemon.json('/api/v1/prices')).currency, 'EUR');
  // A 400 shows in the console as a failed resource; that is the point of this step.
  assert.ok(page.errors.every((e) => e.includes('400')), page.errors.join('\n'));
  await page.context().close();
});

test('no data yet and a disconnected source show clear states, behind a password too', async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'meterkast-e2e-empty-'));
  const port = await freePort(); // nobody listens there: the source stays disconnected
  const d = await Daemon.start(empty, [`tcp://127.0.0.1:${port}`], ['--auth-basic', 'home:secret']);
  try {
    assert.equal((await fetch(`${d.base}/`)).status, 401);
    const page = await open({ httpCredentials: { username: 'home', password: 'secret' } }, null);
    for (const name of PAGES) {
      await visit(page, d.base, `#/${name}`);
      if (name !== 'prices') assert.match(await page.textContent('#view'), /No meter has sent a reading yet/);
    }
    await visit(page, d.base, '#/now');
    await page.waitForSelector('#banners .note.warn');
    assert.match(await page.textContent('#banners'), /disconnected/);
    await page.setViewportSize(SIZES.phone);
    await page.screenshot({ path: path.join(SHOTS, 'now-no-data-phone-light.png') });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  } finally {
    d.stop();
    fs.rmSync(empty, { recursive: true, force: true });
  }
});
