// The public page's citizen reports and open data: the newest reports for the map and
// the list, the last 12 months' figures, and the open data portal's counts and newest
// datasets. Public endpoints only (/reports/v1/public/…, /reports/v1/categories, the
// CKAN API), which carry no personal data; every value reaches the page as text
// through `el` or escaped.
import { el, escapeHtml, fmtNumber, TZ, token } from './common.js';
import { categoryName, iconOf, STAGE_NAMES } from './report/words.js';

/** How far back the map and the list go, and how many reports they hold at most. */
export const REPORT_DAYS = 30;
export const REPORT_LIMIT = 500;
/** How many reports the list shows before "show more", and how many more each time. */
const LIST_STEP = 8;
const RECENT_DATASETS = 4;

async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

async function ckan(action, params) {
  const body = await getJson(`/api/3/action/${action}?${new URLSearchParams(params)}`);
  if (!body.success) throw new Error(`${action}: ${body.error?.message || 'failed'}`);
  return body.result;
}

/** The reports, their categories and the year's figures (each may fail alone). */
export async function loadReports() {
  const from = new Date(Date.now() - 365 * 86_400_000).toISOString();
  const [list, categories, stats] = await Promise.allSettled([
    getJson(`/reports/v1/public/requests?days=${REPORT_DAYS}&limit=${REPORT_LIMIT}`),
    getJson('/reports/v1/categories'),
    getJson(`/reports/v1/public/stats?by=all&from=${encodeURIComponent(from)}`),
  ]);
  return {
    reports: list.status === 'fulfilled' ? list.value.requests : null,
    categories: categories.status === 'fulfilled' ? new Map(categories.value.map((c) => [c.service_code, c])) : new Map(),
    year: stats.status === 'fulfilled' ? stats.value[0] || null : null,
  };
}

/** The portal's numbers and its most recently changed datasets. */
export async function loadOpenData() {
  const [search, orgs] = await Promise.all([ckan('package_search', { rows: RECENT_DATASETS, sort: 'metadata_modified desc' }), ckan('organization_list', {})]);
  return { count: search.count, organisations: orgs.length, recent: search.results };
}

/** Open, open past its deadline, done, or set aside: the colour of a report. */
export function reportTone(r) {
  if (r.stage === 'resolved' || r.stage === 'closed') return 'done';
  if (r.stage === 'rejected' || r.stage === 'merged') return 'aside';
  return r.overdue ? 'late' : 'open';
}

const withPlace = (r) => typeof r.lat === 'number' && typeof r.long === 'number';
export const mappable = (reports) => (reports || []).filter(withPlace);

/** A report's marker: a small coloured dot, its id as an (escaped) attribute. */
export function reportIcon(L, r, title) {
  return L.divIcon({
    className: '',
    html: `<span class="rp-mk rp-${token(reportTone(r))}" data-report="${escapeHtml(r.service_request_id)}" title="${escapeHtml(title)}"></span>`,
    iconSize: [14, 14],
    iconAnchor: [7, 7],
  });
}

/** A day, as the page's language writes it (Vietnam time). */
function fmtDay(lang, iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'vi-VN', { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric' }).format(d);
}

function stars(n) {
  return '★'.repeat(n) + '☆'.repeat(5 - n);
}

/** What a report's row and popup show; `words` are the page's words in its language. */
function reportParts(r, ctx) {
  const { lang, words } = ctx;
  const category = ctx.categories.get(r.service_code);
  const name = categoryName(category, lang) || r.service_name;
  const tone = reportTone(r);
  return {
    title: `${iconOf(category)} ${name}`,
    badge: el('span', { class: `rp-badge rp-${tone}` }, STAGE_NAMES[lang][r.stage] || r.stage),
    place: r.commune_name || '',
    facts: el(
      'dl',
      { class: 'rp-facts' },
      el('dt', {}, words.agency),
      el('dd', {}, r.agency_responsible),
      el('dt', {}, words.received),
      el('dd', {}, el('time', { datetime: r.requested_datetime }, fmtDay(lang, r.requested_datetime))),
      tone === 'open' || tone === 'late'
        ? [
            el('dt', {}, words.due),
            el('dd', { class: tone === 'late' ? 'rp-overdue' : null }, fmtDay(lang, r.due), tone === 'late' ? ` · ${words.overdue}` : ''),
          ]
        : null,
      r.result ? [el('dt', {}, words.result), el('dd', { class: 'rp-result' }, r.result)] : null,
      typeof r.rating === 'number'
        ? [el('dt', {}, words.rating), el('dd', { class: 'rp-rating', 'aria-label': words.ratingOf(r.rating) }, stars(r.rating))]
        : null,
    ),
    photo: r.thumbnail ? el('img', { class: 'rp-photo', src: r.thumbnail, alt: words.photo, loading: 'lazy', width: 72, height: 72 }) : null,
  };
}

export function reportPopup(r, ctx) {
  const p = reportParts(r, ctx);
  return el(
    'div',
    { class: 'popup rp-popup', 'data-report': r.service_request_id },
    el('b', {}, p.title),
    p.place ? el('div', { class: 'muted' }, p.place) : null,
    el('div', {}, p.badge),
    p.facts,
    p.photo,
  );
}

/** The list of reports, newest first, `shown` of them. */
export function reportRows(reports, shown, ctx, onShow) {
  return reports.slice(0, shown).map((r) => {
    const p = reportParts(r, ctx);
    return el(
      'li',
      { class: `rp-row rp-${reportTone(r)}`, 'data-report': r.service_request_id },
      p.photo,
      el(
        'div',
        { class: 'rp-body' },
        withPlace(r)
          ? el('button', { type: 'button', class: 'rp-name', onclick: () => onShow(r.service_request_id) }, p.title)
          : el('span', { class: 'rp-name' }, p.title),
        p.badge,
        p.place ? el('span', { class: 'rp-place' }, p.place) : null,
        p.facts,
        r.demo ? el('span', { class: 'demo-tag' }, ctx.words.demo) : null,
      ),
    );
  });
}

export const nextShown = (shown, total) => Math.min(total, shown + LIST_STEP);
export const FIRST_SHOWN = LIST_STEP;

/** The year's figures: received, handled, on time, satisfied. */
export function reportFigures(year, ctx) {
  const { lang, words } = ctx;
  const pct = (v) => (typeof v === 'number' ? `${fmtNumber(lang, v, 0)}%` : '—');
  const figure = (key, value, label) =>
    el('div', { class: 'rp-figure', 'data-figure': key }, el('span', { class: 'rp-figure-value' }, value), el('span', { class: 'rp-figure-label' }, label));
  if (!year) return [];
  return [
    figure('received', fmtNumber(lang, year.received, 0), words.statReceived),
    figure('handled', pct(year.handled_pct), words.statHandled),
    figure('on-time', pct(year.on_time_pct), words.statOnTime),
    figure('satisfaction', pct(year.satisfaction_pct), words.statSatisfied),
  ];
}

/** The open data block: the counts, the newest datasets (links into /data/), a link to all. */
export function openDataBlock(data, ctx) {
  const { lang, words } = ctx;
  const tr = (obj, fallback) => (obj && (obj[lang] || obj.vi)) || fallback || '';
  return [
    el(
      'div',
      { class: 'od-counts' },
      el(
        'span',
        { class: 'rp-figure', 'data-figure': 'datasets' },
        el('span', { class: 'rp-figure-value', id: 'od-dataset-count' }, fmtNumber(lang, data.count, 0)),
        el('span', { class: 'rp-figure-label' }, words.datasets),
      ),
      el(
        'span',
        { class: 'rp-figure', 'data-figure': 'organisations' },
        el('span', { class: 'rp-figure-value' }, fmtNumber(lang, data.organisations, 0)),
        el('span', { class: 'rp-figure-label' }, words.organisations),
      ),
    ),
    el('h3', {}, words.recentDatasets),
    el(
      'ul',
      { class: 'od-recent' },
      ...data.recent.map((p) =>
        el(
          'li',
          {},
          el('a', { href: `/data/?dataset=${encodeURIComponent(p.name)}` }, tr(p.title_translated, p.title)),
          el(
            'span',
            { class: 'muted small' },
            [tr(p.organization?.title_translated, p.organization?.title), p.metadata_modified ? `${words.updatedOn} ${fmtDay(lang, p.metadata_modified)}` : '']
              .filter(Boolean)
              .join(' · '),
          ),
        ),
      ),
    ),
    el('a', { class: 'od-all', href: '/data/' }, words.allData),
  ];
}
