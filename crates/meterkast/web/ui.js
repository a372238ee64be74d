// What every page uses: the API helper, an element builder, notes, live listeners.

/** GETs (or sends) JSON; throws an Error with the server's own message on failure. */
export async function api(path, params = {}, init) {
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== ''));
  const url = qs.toString() ? `${path}?${qs}` : path;
  const r = await fetch(url, init);
  const text = await r.text();
  if (!r.ok) {
    let msg = `${r.status}`;
    try { msg = JSON.parse(text).error || msg; } catch { /* not JSON */ }
    throw new Error(msg);
  }
  const type = r.headers.get('content-type') || '';
  return type.includes('json') ? JSON.parse(text) : text;
}

/** A small element builder: h('div.card', {text}, children...). */
export function h(spec, attrs = {}, ...kids) {
  const [tag, ...classes] = spec.split('.');
  const e = document.createElement(tag || 'div');
  if (classes.length) e.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k != null) e.append(k);
  return e;
}

/** A clear state instead of an empty chart: a note with an icon. */
export const note = (text, kind = 'info') => h(`p.note.${kind}`, { text, role: kind === 'warn' ? 'alert' : 'status' });

/** The live listeners of the page on screen. */
export const listeners = new Set();

/** Pages call this to hear each live reading of the selected meter. */
export function onLive(fn) { listeners.add(fn); }

