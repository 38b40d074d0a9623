// The operations centre's alert banner: the tenant's open alerts, live from
// /alerts/v1/stream (server-sent events), the most severe and newest first, with a
// sound when a serious one fires. Operators and admins acknowledge and resolve from
// the banner; viewers see it.

import { send, session } from './auth.js';
import { el } from './common.js';
import './alerts.css';

const SEVERITY_RANK = { critical: 4, high: 3, medium: 2, low: 1, informational: 0 };
/** Severities that sound when they fire, and show in the banner. */
const LOUD = new Set(['critical', 'high']);
const SHOWN = new Set(['critical', 'high', 'medium']);

const TEXT = {
  vi: {
    open: (n) => `${n} cảnh báo đang mở`,
    acknowledge: 'Xác nhận',
    resolve: 'Đã xử lý',
    acknowledged: 'đã xác nhận',
    severity: { critical: 'Khẩn cấp', high: 'Cao', medium: 'Trung bình', low: 'Thấp', informational: 'Thông tin' },
    failed: 'Không thực hiện được: ',
  },
  en: {
    open: (n) => `${n} open alert${n === 1 ? '' : 's'}`,
    acknowledge: 'Acknowledge',
    resolve: 'Resolve',
    acknowledged: 'acknowledged',
    severity: { critical: 'Critical', high: 'High', medium: 'Medium', low: 'Low', informational: 'Info' },
    failed: 'Could not do it: ',
  },
};

const state = { open: new Map(), lang: () => 'vi', source: null, banner: null, audio: null, listeners: [] };

/** Calls `fn` whenever an alert changes (the stream's events and actions taken here). */
export function onAlertsChanged(fn) {
  state.listeners.push(fn);
}

function changed() {
  for (const fn of state.listeners) fn();
}

function rank(a) {
  return (SEVERITY_RANK[a.severity] ?? 0) * 10 + (a.status === 'firing' ? 1 : 0);
}

function describe(a, lang) {
  const d = a.description;
  if (d && typeof d === 'object') return d[lang] || d.vi || d.en || a.id;
  return d || a.id;
}

/** Two short tones (the browser may keep silent until the page has been used). */
function beep() {
  try {
    state.audio = state.audio || new AudioContext();
    const ctx = state.audio;
    [0, 0.25].forEach((at, i) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = i ? 660 : 880;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.18);
    });
  } catch (e) {
    console.warn('no sound', e);
  }
}

/** Acknowledges or resolves an alert (`what`), for an operator; returns it as it is
 * then, or throws. */
export async function actOn(id, what) {
  const done = await send('POST', `/alerts/v1/alerts/${encodeURIComponent(id)}/${what}`, {});
  take(done, false);
  return done;
}

async function act(a, what) {
  try {
    await actOn(a.id, what);
  } catch (e) {
    window.alert(TEXT[state.lang()].failed + e.message);
  }
}

function render() {
  const banner = state.banner;
  if (!banner) return;
  const t = TEXT[state.lang()] || TEXT.vi;
  const shown = [...state.open.values()]
    .filter((a) => SHOWN.has(a.severity))
    .sort((x, y) => rank(y) - rank(x) || String(y.dateIssued).localeCompare(String(x.dateIssued)));
  banner.hidden = shown.length === 0;
  banner.dataset.count = String(shown.length);
  if (!shown.length) {
    banner.replaceChildren();
    return;
  }
  const top = shown[0];
  banner.dataset.severity = top.severity;
  const canAct = ['operator', 'admin'].includes(session.me?.role);
  const row = (a) =>
    el(
      'li',
      { 'data-alert': a.id, 'data-status': a.status },
      el('span', { class: `al-sev al-${a.severity}` }, t.severity[a.severity] || a.severity),
      el('span', { class: 'al-text' }, describe(a, state.lang())),
      a.status === 'acknowledged' ? el('span', { class: 'al-ack' }, t.acknowledged) : null,
      canAct && a.status === 'firing' ? el('button', { type: 'button', class: 'al-btn', onclick: () => act(a, 'acknowledge') }, t.acknowledge) : null,
      canAct ? el('button', { type: 'button', class: 'al-btn', onclick: () => act(a, 'resolve') }, t.resolve) : null,
    );
  banner.replaceChildren(el('strong', { class: 'al-count' }, t.open(shown.length)), el('ul', { class: 'al-list' }, ...shown.slice(0, 5).map(row)));
}

/** Takes an alert as the stream or an action returned it. */
function take(a, live) {
  const known = state.open.get(a.id);
  if (a.status === 'resolved') state.open.delete(a.id);
  else state.open.set(a.id, a);
  if (live && !known && a.status === 'firing' && LOUD.has(a.severity)) beep();
  render();
  changed();
}

/** Starts the banner above the page's main area; `lang` says the current language. */
export function startAlerts(lang) {
  state.lang = lang;
  if (!state.banner) {
    state.banner = el('section', { id: 'alert-banner', class: 'alert-banner', role: 'alert', 'aria-live': 'assertive' });
    state.banner.hidden = true;
    const top = document.querySelector('header.top');
    if (top) top.after(state.banner);
    else document.body.prepend(state.banner);
  }
  state.source?.close();
  const source = new EventSource('/alerts/v1/stream');
  source.addEventListener('snapshot', (e) => {
    state.open.clear();
    for (const a of JSON.parse(e.data).alerts || []) state.open.set(a.id, a);
    render();
    changed();
  });
  source.addEventListener('alert', (e) => take(JSON.parse(e.data), true));
  state.source = source;
}

/** Stops the stream (the session ended). */
export function stopAlerts() {
  state.source?.close();
  state.source = null;
}

/** Draws the banner again in the current language. */
export function translateAlerts() {
  render();
}
