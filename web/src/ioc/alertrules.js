// The operations centre's management of alerting (below the alert list): the rules, the
// silences, the inhibitions and the notification policies of /alerts/v1, each listed
// with its main members, written as JSON in an editor (the API's own documents, so
// every member the API knows can be set), and deleted. A rule can be switched on and
// off from its row, and backtested over the last 30 days before it is switched on.
// The server checks every document and its refusal is shown as it says it. Viewers
// read; operators and admins write; policies name contacts, so only they read them.

import { ApiError, getJson, send, session } from '../auth.js';
import { $, boxedTable, el, token } from '../common.js';
import { ALERT_RULES_TEXT, wordsOf } from '../i18n.js';

/** Records listed per kind (the API's largest page). */
const LISTED = 1000;

const hours = (n) => new Date(Date.now() + n * 3600_000).toISOString();
const matchers = (ms) => (ms || []).map((m) => `${m.name} ${m.op || '='} ${m.value}`).join(', ');

/** Each kind: where it lives, what its row shows, and what a new one starts from. */
const KINDS = {
  rules: {
    columns: ['colId', 'colWhat', 'colSeverity'],
    cells: (r, lang) => [r.message?.[lang] || r.name || '', r.severity || ''],
    template: () => ({
      id: 'new-rule',
      name: 'Quy tắc mới / New rule',
      enabled: false,
      scope: { type: 'WaterObserved' },
      condition: { kind: 'threshold', attribute: 'waterLevel', op: '>=', value: 5 },
      severity: 'medium',
      message: { vi: '{place}: {attribute} = {value}', en: '{place}: {attribute} = {value}' },
    }),
  },
  silences: {
    columns: ['colId', 'colWhat', 'colUntil'],
    cells: (s) => [[matchers(s.matchers), s.comment].filter(Boolean).join(' — '), s.endsAt || ''],
    template: () => ({ matchers: [{ name: 'entity', value: 'urn:ngsi-ld:WaterObserved:…' }], endsAt: hours(2), comment: 'Bảo trì / maintenance' }),
  },
  inhibitions: {
    columns: ['colId', 'colWhat'],
    cells: (i) => [`${matchers(i.source)} ⇒ ${matchers(i.target)}${i.equal?.length ? ` (${i.equal.join(', ')})` : ''}`],
    template: () => ({ source: [{ name: 'severity', value: 'critical' }], target: [{ name: 'severity', value: 'low' }], equal: ['entity'] }),
  },
  policies: {
    columns: ['colId', 'colWhat'],
    cells: (p) => [(p.channels || []).map((c) => `${c.kind}: ${c.url || (c.to || []).join(', ')}`).join('; ')],
    template: () => ({
      id: 'new-policy',
      order: 10,
      match: { severity: ['high', 'critical'] },
      channels: [{ kind: 'webhook', url: 'https://example.org/hook' }],
    }),
  },
};

const ar = {
  lang: () => 'vi',
  lists: {}, // kind → records, or { refused: message }
  editing: null, // { kind, id (null for a new one), text, error }
  notes: {}, // kind → what the last action said
};
const t = wordsOf(ALERT_RULES_TEXT, () => ar.lang());
const canWrite = () => ['operator', 'admin'].includes(session.me?.role);
const path = (kind, id) => `/alerts/v1/${kind}${id === undefined ? '' : `/${encodeURIComponent(id)}`}`;

/** Every kind's list, read again. */
export async function loadAlertRules() {
  await Promise.all(Object.keys(KINDS).map(loadKind));
  renderAlertRules();
}

async function loadKind(kind) {
  try {
    const page = await getJson(`${path(kind)}?limit=${LISTED}`);
    ar.lists[kind] = page[kind] || [];
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 403)) throw e;
    ar.lists[kind] = { refused: t('notAllowed') };
  }
}

/** Runs a write, then reads the kind again; what `work` returns (a text) or the
 * server's refusal becomes the note. */
async function write(kind, work) {
  try {
    const note = await work();
    ar.notes[kind] = { text: note || '', error: false };
    await loadKind(kind);
  } catch (e) {
    ar.notes[kind] = { text: `${t('failed')}${e.message}`, error: true };
  }
  renderAlertRules();
}

async function save() {
  const { kind, id, text } = ar.editing;
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    ar.editing.error = `${t('badJson')}${e.message}`;
    renderAlertRules();
    return;
  }
  try {
    if (id === null) await send('POST', path(kind), doc);
    else await send('PUT', path(kind, id), doc);
  } catch (e) {
    ar.editing.error = e.message;
    renderAlertRules();
    return;
  }
  ar.editing = null;
  ar.notes[kind] = null;
  await loadKind(kind);
  renderAlertRules();
}

function startEditing(kind, record) {
  const doc = record ?? KINDS[kind].template();
  ar.editing = { kind, id: record ? record.id : null, text: JSON.stringify(doc, null, 2), error: '' };
  renderAlertRules();
  $('#alert-rule-editor textarea')?.focus();
}

async function backtest(rule) {
  await write('rules', async () => {
    const r = await send('POST', '/alerts/v1/backtest', { rule });
    return t('backtested', r.count, r.tookMs);
  });
}

function editor(kind) {
  const e = ar.editing;
  if (!e || e.kind !== kind) return null;
  return el(
    'form',
    {
      class: 'arules-editor',
      id: 'alert-rule-editor',
      'data-kind': kind,
      onsubmit: (ev) => {
        ev.preventDefault();
        save();
      },
    },
    el('textarea', {
      rows: '16',
      spellcheck: 'false',
      'aria-label': `${t('kinds')[kind]} (JSON)`,
      oninput: (ev) => {
        e.text = ev.target.value;
      },
    }),
    e.error ? el('p', { class: 'app-error', role: 'alert', id: 'alert-rule-error' }, e.error) : null,
    el(
      'div',
      { class: 'arules-buttons' },
      el('button', { type: 'submit', class: 'primary' }, t('save')),
      el(
        'button',
        {
          type: 'button',
          onclick: () => {
            ar.editing = null;
            renderAlertRules();
          },
        },
        t('cancel'),
      ),
    ),
  );
}

function row(kind, record) {
  const lang = ar.lang();
  const k = KINDS[kind];
  const actions = [];
  if (canWrite()) {
    if (kind === 'rules') {
      actions.push(
        el(
          'label',
          { class: 'arules-toggle' },
          el('input', {
            type: 'checkbox',
            name: 'enabled',
            checked: record.enabled !== false,
            onchange: (ev) =>
              write(kind, async () => {
                await send('PUT', path(kind, record.id), { ...record, enabled: ev.target.checked });
              }),
          }),
          ` ${t('enabled')}`,
        ),
        el('button', { type: 'button', 'data-action': 'backtest', onclick: () => backtest(record) }, t('backtest')),
      );
    }
    actions.push(
      el('button', { type: 'button', 'data-action': 'edit', onclick: () => startEditing(kind, record) }, t('edit')),
      el(
        'button',
        {
          type: 'button',
          'data-action': 'delete',
          onclick: () => {
            if (!window.confirm(t('confirmRemove', record.id))) return;
            write(kind, async () => {
              await send('DELETE', path(kind, record.id));
            });
          },
        },
        t('remove'),
      ),
    );
  }
  return el(
    'tr',
    { 'data-id': record.id, class: record.enabled === false ? 'arules-off' : '' },
    el('td', { class: 'mono' }, record.id),
    ...k.cells(record, lang).map((c) => el('td', {}, c)),
    el('td', { class: 'arules-actions' }, ...actions),
  );
}

function section(kind) {
  const list = ar.lists[kind];
  const note = ar.notes[kind];
  const head = el(
    'div',
    { class: 'arules-head' },
    el('h3', {}, t('kinds')[kind]),
    canWrite() && Array.isArray(list) ? el('button', { type: 'button', 'data-action': 'add', onclick: () => startEditing(kind, null) }, t('add')) : null,
  );
  let body;
  if (!list) body = null;
  else if (list.refused) body = el('p', { class: 'muted' }, list.refused);
  else if (!list.length) body = el('p', { class: 'muted' }, t('none'));
  else
    body = boxedTable(
      { class: 'arules-table' },
      [...KINDS[kind].columns.map((c) => t(c)), ''],
      list.map((r) => row(kind, r)),
    );
  return el(
    'section',
    { class: 'arules-kind', id: `alert-${token(kind)}` },
    head,
    note?.text ? el('p', { class: note.error ? 'app-error' : 'arules-note', role: 'status' }, note.text) : null,
    editor(kind),
    body,
  );
}

export function renderAlertRules() {
  const box = $('#alert-rules-body');
  if (!box) return;
  box.replaceChildren(el('h2', {}, t('title')), ...Object.keys(KINDS).map(section));
  // The editor's text is set as a value, never parsed as markup.
  const area = $('#alert-rule-editor textarea');
  if (area && ar.editing) area.value = ar.editing.text;
}

export function initAlertRules(getLang) {
  ar.lang = getLang;
}

/** The view was opened: the lists are read again. */
export function showAlertRules() {
  loadAlertRules().catch((e) => {
    const box = $('#alert-rules-body');
    box?.prepend(el('p', { class: 'app-error', role: 'alert' }, `${t('failed')}${e.message}`));
  });
}
