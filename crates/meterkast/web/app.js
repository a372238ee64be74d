// The dashboard shell: routing, the meter picker, language and theme, the API helper
// and the one live event stream every page shares.

import { t, initLang, setLang, currentLang, LANGS, LANG_NAMES } from './i18n.js';
import { PAGES } from './pages.js';
import { api, h, note, listeners } from './ui.js';

const state = { meters: [], meter: null };

let lastReload = 0;

function openLive() {
  const es = new EventSource('/api/v1/live');
  es.addEventListener('reading', (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    if (!state.meters.some((m) => m.id === frame.meter)) {
      // A meter we did not know yet (its first reading): reload the list, at most
      // every few seconds (the store commits it within one).
      if (Date.now() - lastReload > 3000) {
        lastReload = Date.now();
        setTimeout(() => loadMeters().then(render), 1500);
      }
      return;
    }
    if (frame.meter !== state.meter?.id) return;
    for (const fn of listeners) {
      try { fn(frame); } catch (e) { console.warn('live update failed', e); }
    }
  });
  es.addEventListener('identify', showIdentify);
  es.onopen = () => setBanner('live', null);
  es.onerror = () => setBanner('live', t('live_lost'));
}

// A HomeWizard client (Home Assistant's Identify button) asked which device this is:
// the Meter page flashes a notice for a few seconds, as the dongle blinks its light.
let identifyTimer = 0;
function showIdentify() {
  const view = document.getElementById('view');
  if (view.dataset.page !== 'meter') return;
  document.getElementById('identify')?.remove();
  const n = note(t('identify'));
  n.id = 'identify';
  n.classList.add('flash');
  view.prepend(n);
  clearTimeout(identifyTimer);
  identifyTimer = setTimeout(() => n.remove(), 10000);
}

const banners = new Map();
function setBanner(key, text) {
  if (text) banners.set(key, text); else banners.delete(key);
  const box = document.getElementById('banners');
  box.replaceChildren(...[...banners.values()].map((b) => note(b, 'warn')));
}

async function loadMeters() {
  try {
    state.meters = await api('/api/v1/meters');
  } catch (e) {
    state.meters = [];
    setBanner('meters', t('error', { msg: e.message }));
    return;
  }
  setBanner('meters', null);
  const saved = localStorage.getItem('mk-meter');
  state.meter = state.meters.find((m) => m.id === saved)
    || [...state.meters].sort((a, b) => b.last_seen.localeCompare(a.last_seen))[0] || null;
  const pick = document.getElementById('meter');
  pick.replaceChildren(...state.meters.map((m) => h('option', { value: m.id, text: `${m.id.slice(-8)} · ${m.dialect}` })));
  if (state.meter) pick.value = state.meter.id;
  pick.parentElement.hidden = state.meters.length < 2;
}

async function checkSources() {
  try {
    const s = await api('/api/v1/status');
    const down = s.sources.filter((x) => !x.connected);
    setBanner('sources', down.length ? down.map((x) => t('disconnected', { name: x.name, note: x.note || '' })).join(' · ') : null);
  } catch { /* the page itself reports API errors */ }
}

function route() {
  const [name, qs] = location.hash.replace(/^#\/?/, '').split('?');
  return { name: PAGES[name] ? name : 'now', params: new URLSearchParams(qs || '') };
}

let renderSeq = 0;
async function render() {
  const { name, params } = route();
  const seq = ++renderSeq;
  listeners.clear();
  for (const a of document.querySelectorAll('nav a')) {
    a.toggleAttribute('aria-current', a.dataset.page === name);
    a.textContent = t(a.dataset.page);
  }
  const view = document.getElementById('view');
  view.dataset.page = name;
  view.setAttribute('aria-busy', 'true');
  document.title = `${t(name)} · meterkast`;
  checkSources();
  const body = h('div.page');
  try {
    if (!state.meter && name !== 'prices') body.append(note(t('no_meter')));
    else await PAGES[name](body, params, state.meter);
  } catch (e) {
    console.warn(e);
    body.append(note(t('error', { msg: e.message }), 'warn'));
  }
  if (seq !== renderSeq) return;
  view.replaceChildren(body);
  view.setAttribute('aria-busy', 'false');
  view.dataset.ready = String(seq);
  for (const fn of body.mounted || []) fn();
}

const dark = () => document.documentElement.dataset.theme === 'dark';

async function start() {
  initLang();
  const lang = document.getElementById('lang');
  lang.replaceChildren(...Object.keys(LANGS).map((l) => h('option', { value: l, text: LANG_NAMES[l] })));
  lang.value = currentLang();
  lang.addEventListener('change', () => { setLang(lang.value); render(); });
  document.getElementById('theme').addEventListener('click', () => {
    localStorage.setItem('mk-theme', dark() ? 'light' : 'dark');
    window.mkApplyTheme();
    render();
  });
  document.getElementById('meter').addEventListener('change', (e) => {
    localStorage.setItem('mk-meter', e.target.value);
    state.meter = state.meters.find((m) => m.id === e.target.value);
    render();
  });
  window.addEventListener('hashchange', render);
  window.addEventListener('mk-theme', render);
  await loadMeters();
  openLive();
  await render();
}

start();
