// Helpers both pages share: building elements (text always goes in as text, never as
// HTML), escaping for the few places a library takes an HTML string, the language
// kept by the browser, numbers and times in Vietnam's time, and the province map.
import L from 'leaflet';

export const TZ = 'Asia/Ho_Chi_Minh';
export const STATES = ['normal', 'warning', 'alarm1', 'alarm2', 'alarm3', 'offline'];
export const STATE_RANK = Object.fromEntries(STATES.map((s, i) => [s, i]));

export const $ = (sel, root = document) => root.querySelector(sel);

/**
 * An element with attributes, listeners (`onclick`…) and children. Children that are
 * not nodes become text nodes; `style` is set through the CSSOM (the pages' policy
 * refuses inline style attributes).
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** A `<select>` named `name` of `options` ([value, label] pairs) with `value` chosen;
 * `onchange` gets the value picked. */
export function select(name, value, options, onchange) {
  return el(
    'select',
    { name, 'aria-label': name, onchange: (e) => onchange(e.target.value) },
    ...options.map(([v, label]) => el('option', { value: v, selected: v === value }, label)),
  );
}

/** A table in its scrolling box: `attrs` of the table, a header cell per heading (a
 * node or text), the `rows`, then the `foot` if any. */
export function boxedTable(attrs, headings, rows, foot = null) {
  return el(
    'div',
    { class: 'table-wrap' },
    el('table', attrs, el('thead', {}, el('tr', {}, ...headings.map((h) => el('th', {}, h)))), el('tbody', {}, ...rows), foot),
  );
}

/** Text made safe to put in HTML (text and attribute values). */
export function escapeHtml(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** A word safe as part of a class name (states and layers come from the server). */
export const token = (s) => String(s ?? '').replace(/[^a-zA-Z0-9_-]/g, '');

/** The language the browser keeps for the app: `vi` unless `en` was picked. */
export function storedLang() {
  const v = localStorage.getItem('dothi.lang') || localStorage.getItem('ioc.lang');
  return v === 'en' ? 'en' : 'vi';
}

export function saveLang(lang) {
  localStorage.setItem('dothi.lang', lang);
  localStorage.setItem('ioc.lang', lang);
}

/** Makes the page's language buttons (`.lang button`) switch the language: the browser
 * keeps the one picked, then `switchTo(lang)` shows the page in it. */
export function onLangButtons(switchTo) {
  for (const b of document.querySelectorAll('.lang button')) {
    b.addEventListener('click', () => {
      saveLang(b.dataset.lang);
      switchTo(b.dataset.lang);
    });
  }
}

/** Marks the language button of `lang` as the active one. */
export function markLangButton(lang) {
  for (const b of document.querySelectorAll('.lang button')) b.classList.toggle('active', b.dataset.lang === lang);
}

const locale = (lang) => (lang === 'vi' ? 'vi-VN' : 'en-GB');

export const fmtNumber = (lang, v, digits = 2) => new Intl.NumberFormat(locale(lang), { maximumFractionDigits: digits }).format(v);

export const fmtTime = (lang, iso) =>
  iso
    ? new Intl.DateTimeFormat(locale(lang), {
        timeZone: TZ,
        day: '2-digit',
        month: '2-digit',
        year: 'numeric',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      }).format(new Date(iso))
    : '';

export const fmtClock = (lang, iso) =>
  iso ? new Intl.DateTimeFormat(locale(lang), { timeZone: TZ, hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(iso)) : '';

/** Hour and day, short: "07:42 06/12". */
export function fmtShort(_lang, iso) {
  if (!iso) return '';
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone: TZ,
      day: '2-digit',
      month: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(iso))
      .map((x) => [x.type, x.value]),
  );
  return `${p.hour}:${p.minute} ${p.day}/${p.month}`;
}

/** The province map in `container`: fitted to the configured bounds, with the base map
 * under it when one is configured, and a pane for the communes. */
export function provinceMap(container, config, options = {}) {
  const map = L.map(container, { zoomSnap: 0.25, minZoom: 6, maxZoom: 18, attributionControl: !!config.basemapUrl, ...options });
  const b = config.bounds;
  map.fitBounds([
    [b[0][1], b[0][0]],
    [b[1][1], b[1][0]],
  ]);
  if (config.basemapUrl) L.tileLayer(config.basemapUrl, { maxZoom: 18, opacity: 0.6 }).addTo(map);
  map.createPane('communes').style.zIndex = 350;
  return map;
}

/** A marker's icon: a dot filled by its state, ringed by its layer. */
export function dotIcon(item, title) {
  return L.divIcon({
    className: '',
    html: `<span class="mk st-${token(item.state)} ly-${token(item.layer)}${item.demo ? ' demo' : ''}" data-id="${escapeHtml(item.id)}" title="${escapeHtml(title)}"></span>`,
    iconSize: [16, 16],
    iconAnchor: [8, 8],
  });
}
