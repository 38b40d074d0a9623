// The citizen's page at /report/: the report form (form.js), the tracking page at
// /report/track#TOKEN (track.js), the reports sent from this device, and the outbox of
// reports made without signal (outbox.js). Phone first, Vietnamese and English, no
// login: it reads the public page's settings and communes, the categories, and the
// reporter's own report through its tracking token.
import 'leaflet/dist/leaflet.css';
import '../base.css';
import '../public.css';
import './report.css';
import { $, el, fmtTime, markLangButton, onLangButtons, storedLang } from '../common.js';
import { flush, form, initForm, initMap, mine, renderOutbox, trackUrl, translateForm } from './form.js';
import { renderTrack, showTrack, tokenInUrl } from './track.js';
import { CITIZEN_TEXT, categoryName } from './words.js';

const page = {
  lang: storedLang(),
  config: null,
  communes: null,
  categories: null,
  t: (key, ...args) => {
    const v = CITIZEN_TEXT[page.lang][key] ?? CITIZEN_TEXT.vi[key] ?? key;
    return typeof v === 'function' ? v(...args) : v;
  },
  renderMine,
};
window.dothiReport = { page, form }; // for the browser tests

/** JSON from the server; what was read last is kept, so that a page opened again
 * without signal still has its categories. */
async function getJson(url, keepAs) {
  try {
    const r = await fetch(url, { headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    const v = await r.json();
    if (keepAs) {
      try {
        localStorage.setItem(keepAs, JSON.stringify(v));
      } catch {
        /* storage full: the next load reads the server again */
      }
    }
    return v;
  } catch (e) {
    const kept = keepAs && localStorage.getItem(keepAs);
    if (kept) return JSON.parse(kept);
    throw e;
  }
}

function renderMine() {
  const list = mine();
  const box = $('#mine');
  box.hidden = !list.length;
  const byCode = new Map((page.categories || []).map((c) => [c.service_code, c]));
  box.replaceChildren(
    el('h2', {}, page.t('mine')),
    el(
      'ul',
      {},
      ...list.map((m) =>
        el(
          'li',
          {},
          el('a', { href: trackUrl(m.token), 'data-id': m.id }, m.id),
          ' · ',
          categoryName(byCode.get(m.code), page.lang) || m.code || '',
          ' · ',
          fmtTime(page.lang, m.at),
        ),
      ),
    ),
  );
}

function applyLanguage() {
  document.documentElement.lang = page.lang;
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = page.t(e.dataset.t);
  markLangButton(page.lang);
  document.title = `${page.t('title')} — ${page.t('org')}`;
  translateForm();
  renderMine();
  renderTrack();
  renderOutbox();
}

function showOnline() {
  $('#offline-note').hidden = navigator.onLine;
}

async function boot() {
  onLangButtons((lang) => {
    page.lang = lang;
    applyLanguage();
  });
  window.addEventListener('online', showOnline);
  window.addEventListener('offline', showOnline);
  showOnline();
  initForm(page);
  const token = location.pathname.startsWith('/report/track') ? tokenInUrl() : null;
  try {
    page.categories = await getJson('/reports/v1/categories', 'dothi.reports.categories');
    if (token) {
      applyLanguage();
      await showTrack(page, token);
    } else {
      [page.config, page.communes] = await Promise.all([
        getJson('/public/api/config', 'dothi.reports.config'),
        getJson('/public/api/communes').catch(() => null),
      ]);
      $('#report-form').hidden = false;
      initMap();
      applyLanguage();
      await flush();
    }
  } catch (e) {
    console.error(e);
    const box = $('#load-error');
    box.textContent = `${page.t('loadFailed')}${e.message}`;
    box.hidden = false;
  }
  window.addEventListener('hashchange', () => {
    const t = tokenInUrl();
    if (t && location.pathname.startsWith('/report/track')) showTrack(page, t);
  });
  // Keeps the page and its data on the phone, so that it opens again without signal.
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/report/sw.js', { scope: '/report/' }).catch((e) => console.warn(e));
  document.body.dataset.ready = 'true';
}

boot();
