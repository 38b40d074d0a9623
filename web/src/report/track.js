// The tracking page (/report/track#TOKEN): the report's status, due date and timeline,
// its result and photos, a rating once resolved, and the reporter's own contact with
// the consent they gave, which they can erase. The token stays in the fragment: it is
// sent only in the calls to /reports/v1/track/{token}, never in the page's URL.
import { $, el, fmtTime } from '../common.js';
import { categoryName, STAGE_NAMES, UPDATE_NAMES } from './words.js';

const view = { page: null, token: null, report: null, erasing: false, note: '' };
const t = (k, ...a) => view.page.t(k, ...a);

/** The token in the URL's fragment, if it has the shape of one. */
export function tokenInUrl() {
  const h = location.hash.replace(/^#/, '');
  return /^[0-9a-f]{32}$/i.test(h) ? h : null;
}

const api = (token, suffix = '') => `/reports/v1/track/${encodeURIComponent(token)}${suffix}`;

export async function showTrack(page, token) {
  view.page = page;
  view.token = token;
  const box = $('#track');
  box.hidden = false;
  try {
    const r = await fetch(api(token), { headers: { Accept: 'application/json' }, cache: 'no-store' });
    if (!r.ok) {
      view.report = null;
      box.replaceChildren(el('section', { class: 'card' }, el('h2', {}, t('trackTitle')), el('p', { class: 'rp-error' }, t('trackMissing'))));
      return;
    }
    view.report = await r.json();
  } catch (e) {
    box.replaceChildren(el('p', { class: 'load-error' }, `${t('loadFailed')}${e.message}`));
    return;
  }
  renderTrack();
}

function row(label, value) {
  return value ? el('div', { class: 'rp-row' }, el('dt', {}, label), el('dd', {}, value)) : null;
}

export function renderTrack() {
  const r = view.report;
  if (!r) return;
  const lang = view.page.lang;
  const category = view.page.categories?.find((c) => c.service_code === r.service_code);
  const photos = r.mediaUrls || (r.media_url ? [r.media_url] : []);
  const events = [
    { at: r.requested_datetime, text: STAGE_NAMES[lang].received },
    ...(r.updates || []).map((u) => ({ at: u.updated_datetime, text: [UPDATE_NAMES[lang][u.status] || u.status, u.description].filter(Boolean).join(': ') })),
  ].sort((a, b) => String(a.at).localeCompare(String(b.at)));
  $('#track').replaceChildren(
    el(
      'section',
      { class: 'card' },
      el('h2', {}, t('trackTitle'), ' ', el('strong', { id: 'track-code' }, r.service_request_id)),
      r.demo ? el('p', { class: 'muted small' }, t('demo')) : null,
      el(
        'dl',
        { class: 'rp-facts' },
        row(t('stepCategory').replace(/^1\. /, ''), category ? categoryName(category, lang) : r.service_name),
        el(
          'div',
          { class: 'rp-row' },
          el('dt', {}, t('status')),
          el('dd', { id: 'track-status', 'data-stage': r.workflowStatus }, STAGE_NAMES[lang][r.workflowStatus] || r.workflowStatus),
        ),
        row(t('received'), fmtTime(lang, r.requested_datetime)),
        row(t('due'), r.status === 'open' ? `${fmtTime(lang, r.due)}${r.overdue ? ` · ${t('overdue')}` : ''}` : null),
        row(t('commune'), r.communeName),
        row(t('agency'), r.agency_responsible),
        row(t('result'), r.resolution),
        row(t('reason'), r.rejectionReason),
        row(t('mergedInto'), r.mergedInto),
        row('', r.supporters ? t('supporters', r.supporters) : null),
      ),
      r.description ? el('p', { class: 'rp-desc' }, r.description) : null,
      photos.length
        ? el('div', { class: 'rp-photos' }, ...photos.map((u) => el('a', { href: u }, el('img', { src: u.replace(/\.jpg$/, '-thumb.jpg'), alt: '' }))))
        : null,
    ),
    el(
      'section',
      { class: 'card' },
      el('h2', {}, t('timeline')),
      el('ol', { class: 'rp-timeline', id: 'track-timeline' }, ...events.map((e) => el('li', {}, el('time', {}, fmtTime(lang, e.at)), ' ', e.text))),
    ),
    r.workflowStatus === 'resolved' ? ratingForm() : null,
    r.rating ? el('p', { class: 'card' }, t('rated', r.rating)) : null,
    contactBox(),
  );
}

function ratingForm() {
  const stars = el('select', { id: 'rating', required: true }, ...[5, 4, 3, 2, 1].map((n) => el('option', { value: n }, `${n} ★`)));
  const comment = el('input', { id: 'rating-comment', maxlength: 1000 });
  const note = el('p', { class: 'rp-error', role: 'alert', hidden: true });
  return el(
    'form',
    {
      class: 'card rp-rate',
      onsubmit: async (e) => {
        e.preventDefault();
        const r = await fetch(api(view.token, '/rating'), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ rating: Number(stars.value), comment: comment.value.trim() || undefined }),
        });
        const body = await r.json().catch(() => ({}));
        if (!r.ok) {
          note.textContent = body.detail || `HTTP ${r.status}`;
          note.hidden = false;
          return;
        }
        showTrack(view.page, view.token);
      },
    },
    el('h2', {}, t('rate')),
    el('label', { class: 'rp-field' }, el('span', {}, t('rate')), stars),
    el('label', { class: 'rp-field' }, el('span', {}, t('comment')), comment),
    note,
    el('button', { type: 'submit', class: 'rp-button' }, t('rateSend')),
  );
}

function contactBox() {
  const c = view.report.yourContact;
  const lang = view.page.lang;
  if (!c) {
    return el('section', { class: 'card', id: 'track-contact' }, el('h2', {}, t('yourContact')), el('p', {}, view.note || t('noContact')));
  }
  const fields = [
    [t('name'), [c.contact?.first_name, c.contact?.last_name].filter(Boolean).join(' ')],
    [t('phone'), c.contact?.phone],
    [t('email'), c.contact?.email],
  ];
  const button = el('button', { type: 'button', class: 'rp-button rp-danger', id: 'erase' }, view.erasing ? t('eraseConfirm') : t('erase'));
  button.addEventListener('click', async () => {
    // A second click erases: the first only asks.
    if (!view.erasing) {
      view.erasing = true;
      button.textContent = t('eraseConfirm');
      return;
    }
    const r = await fetch(api(view.token, '/contact'), { method: 'DELETE', headers: { Accept: 'application/json' } });
    view.erasing = false;
    if (r.ok) {
      view.note = t('erased');
      await showTrack(view.page, view.token);
    }
  });
  return el(
    'section',
    { class: 'card', id: 'track-contact' },
    el('h2', {}, t('yourContact')),
    el('dl', { class: 'rp-facts' }, ...fields.map(([k, v]) => row(k, v))),
    el('p', { class: 'muted small' }, t('consentGiven', c.consent_version, fmtTime(lang, c.consent_at))),
    button,
  );
}
