// The admin pages of the operations centre, shown to admins only (the server refuses
// these calls to anyone else): users, API keys and the audit log. Every value from
// the server goes into the page as text.

import { getJson, send } from './auth.js';
import { $, boxedTable, el, fmtTime, token } from './common.js';
import { AUTH_TEXT, ROLE_NAMES } from './i18n.js';

const ROLES = ['admin', 'operator', 'viewer', 'device', 'citizen'];
const AUDIT_PAGE = 50;

const admin = {
  lang: () => 'vi',
  section: 'users',
  users: [],
  keys: [],
  audit: { filter: {}, before: null, stack: [], page: null },
  newKey: null, // the key just created, shown once
  newTotp: null, // the TOTP secret just made, shown once
  message: null,
};

const t = (key) => AUTH_TEXT[admin.lang()][key] ?? AUTH_TEXT.vi[key] ?? key;
const time = (iso) => fmtTime(admin.lang(), iso);

/** Tenants as the API has them ('' the default, '*' all) from what an admin types. */
export function parseTenants(text) {
  const list = String(text || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (['default', 'mặc định', '(default)'].includes(s.toLowerCase()) ? '' : s));
  return [...new Set(list)];
}

function tenantsText(list) {
  if (!list?.length) return '–';
  return list.map((x) => (x === '' ? t('tenantDefault') : x === '*' ? t('tenantAll') : x)).join(', ');
}

export function initAdmin(getLang) {
  admin.lang = getLang;
  for (const b of document.querySelectorAll('#admin-tabs button')) {
    b.addEventListener('click', () => openSection(b.dataset.section));
  }
}

/** Opens the admin view (its current section, loaded again). */
export function showAdmin() {
  openSection(admin.section);
}

/** Redraws in the page's language. */
export function translateAdmin() {
  for (const e of document.querySelectorAll('#view-admin [data-auth]')) e.textContent = t(e.dataset.auth);
  if (document.querySelector('#view-admin.active')) render();
}

function openSection(name) {
  admin.section = name;
  admin.message = null;
  admin.newKey = null;
  admin.newTotp = null;
  for (const b of document.querySelectorAll('#admin-tabs button')) b.classList.toggle('active', b.dataset.section === name);
  load();
}

async function load() {
  const box = $('#admin-body');
  box.dataset.loaded = 'false';
  try {
    if (admin.section === 'users') admin.users = await getJson('/auth/v1/users');
    else if (admin.section === 'keys') admin.keys = await getJson('/auth/v1/keys');
    else await loadAudit();
  } catch (e) {
    admin.message = { error: true, text: t('error')(e.message) };
  }
  render();
  box.dataset.loaded = 'true';
}

function render() {
  const box = $('#admin-body');
  const parts = [];
  if (admin.message) {
    parts.push(el('p', { class: `admin-message${admin.message.error ? ' error' : ''}`, role: 'status' }, admin.message.text));
  }
  if (admin.section === 'users') parts.push(...renderUsers());
  else if (admin.section === 'keys') parts.push(...renderKeys());
  else parts.push(...renderAudit());
  box.replaceChildren(...parts);
}

/** Shows a message above the section, leaving what was typed in its forms. */
function showMessage(message) {
  admin.message = message;
  const box = $('#admin-body');
  box.querySelector('.admin-message')?.remove();
  if (message) {
    box.prepend(el('p', { class: `admin-message${message.error ? ' error' : ''}`, role: 'status' }, message.text));
  }
}

/** Runs an admin action: on success the section again with a message, on failure the
 * server's reason (the forms keep what was typed). */
async function act(fn, success) {
  try {
    await fn();
  } catch (e) {
    showMessage({ error: true, text: t('error')(e.message) });
    return false;
  }
  admin.message = success ? { text: success } : null;
  await load();
  return true;
}

/** A button that asks for a second click before it acts. */
function confirmButton(label, confirmLabel, action, attrs = {}) {
  const b = el(
    'button',
    {
      class: 'button small danger',
      ...attrs,
      onclick: () => {
        if (b.dataset.armed === 'true') {
          action();
          return;
        }
        b.dataset.armed = 'true';
        b.textContent = confirmLabel;
        setTimeout(() => {
          if (b.isConnected) {
            b.dataset.armed = 'false';
            b.textContent = label;
          }
        }, 5000);
      },
    },
    label,
  );
  return b;
}

function roleSelect(name, value = 'viewer') {
  return el(
    'select',
    { name, required: true },
    ROLES.map((r) => el('option', { value: r, selected: r === value }, ROLE_NAMES[admin.lang()][r])),
  );
}

const field = (label, control, hint) => el('label', { class: 'field' }, el('span', {}, label), control, hint ? el('small', {}, hint) : null);

/** A form that stays on the page: submitting it calls `submit(form)`. */
const inPageForm = (attrs, submit, ...children) =>
  el(
    'form',
    {
      ...attrs,
      onsubmit: (e) => {
        e.preventDefault();
        submit(e.target);
      },
    },
    ...children,
  );

const tenantsField = () => field(t('tenants'), el('input', { name: 'tenants', value: 'default', autocomplete: 'off' }), t('tenantsHint'));

/** An admin table in its scrolling box: `headings` above `rows`, or a line saying there
 * are none. */
function adminTable(id, headings, rows) {
  const none = el('tr', {}, el('td', { colspan: headings.length, class: 'muted' }, t('noRecords')));
  return boxedTable({ class: 'admin-table', id }, headings, rows.length ? rows : [none]);
}

// ---------- users ----------

function renderUsers() {
  const newUser = inPageForm(
    { class: 'admin-form', id: 'new-user' },
    createUser,
    el('h3', {}, t('newUser')),
    field(t('username'), el('input', { name: 'username', required: true, autocomplete: 'off', maxlength: 64 })),
    field(t('password'), el('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 12 }), t('passwordPolicy')),
    field(t('role'), roleSelect('role')),
    tenantsField(),
    el('button', { type: 'submit', class: 'primary' }, t('create')),
  );
  const rows = admin.users.map((u) => {
    const locked = u.locked_until && new Date(u.locked_until) > new Date();
    const actions = el(
      'td',
      { class: 'actions' },
      el('button', { class: 'button small', 'data-action': 'password', onclick: (e) => passwordRow(e.target.closest('tr'), u.username) }, t('resetPassword')),
      locked
        ? el(
            'button',
            {
              class: 'button small',
              'data-action': 'unlock',
              onclick: () => act(() => send('PATCH', userUrl(u.username), { unlock: true }), t('userUnlocked')(u.username)),
            },
            t('unlock'),
          )
        : null,
      confirmButton(t('enrolTotp'), t('confirmTotp'), () => enrolTotp(u.username), { 'data-action': 'totp' }),
      confirmButton(t('remove'), t('confirmRemove'), () => act(() => send('DELETE', userUrl(u.username)), t('userRemoved')(u.username)), {
        'data-action': 'delete',
      }),
    );
    return el(
      'tr',
      { 'data-user': u.username },
      el('td', {}, el('b', {}, u.username)),
      el('td', {}, ROLE_NAMES[admin.lang()][u.role] || u.role),
      el('td', {}, tenantsText(u.tenants)),
      el('td', {}, u.mfa ? t('yes') : t('no')),
      el('td', { class: locked ? 'warn' : '' }, locked ? time(u.locked_until) : ''),
      el('td', { class: 'when' }, time(u.created)),
      actions,
    );
  });
  const parts = [];
  if (admin.newTotp) {
    const { user, secret, uri } = admin.newTotp;
    parts.push(secretBox('new-totp', t('totpShown')(user), secretField(secret, 'totp-secret'), el('code', { class: 'uri' }, uri)));
  }
  parts.push(adminTable('users', [t('username'), t('role'), t('tenants'), t('mfa'), t('lockedUntil'), t('created'), t('actions')], rows));
  parts.push(newUser);
  return parts;
}

const userUrl = (name) => `/auth/v1/users/${encodeURIComponent(name)}`;

async function createUser(form) {
  const body = {
    username: form.username.value.trim(),
    password: form.password.value,
    role: form.role.value,
    tenants: parseTenants(form.tenants.value),
  };
  await act(() => send('POST', '/auth/v1/users', body), t('userCreated')(body.username));
}

function passwordRow(row, username) {
  if (row.nextElementSibling?.classList.contains('inline-form')) {
    row.nextElementSibling.remove();
    return;
  }
  const input = el('input', {
    name: 'password',
    type: 'password',
    required: true,
    minlength: 12,
    autocomplete: 'new-password',
    'aria-label': t('newPassword'),
  });
  const form = inPageForm(
    { class: 'inline' },
    () => act(() => send('PATCH', userUrl(username), { password: input.value }), t('passwordChanged')(username)),
    el('span', {}, t('newPassword')),
    input,
    el('button', { type: 'submit', class: 'primary small' }, t('save')),
    el('button', { type: 'button', class: 'button small', onclick: () => form.closest('tr').remove() }, t('cancel')),
    el('small', {}, t('passwordPolicy')),
  );
  row.after(el('tr', { class: 'inline-form' }, el('td', { colspan: 7 }, form)));
  input.focus();
}

async function enrolTotp(username) {
  try {
    const answer = await send('POST', `${userUrl(username)}/totp`);
    admin.newTotp = { user: username, secret: answer.secret, uri: answer.uri };
    admin.users = await getJson('/auth/v1/users');
    admin.message = null;
  } catch (e) {
    showMessage({ error: true, text: t('error')(e.message) });
    return;
  }
  render();
}

// ---------- keys ----------

function secretField(value, id) {
  const input = el('input', { id, class: 'secret', readonly: true, value, spellcheck: 'false', onfocus: (e) => e.target.select() });
  const button = el(
    'button',
    {
      type: 'button',
      class: 'button small copy',
      onclick: async () => {
        input.select();
        let done = false;
        try {
          await navigator.clipboard.writeText(value);
          done = true;
        } catch {
          done = document.execCommand('copy');
        }
        if (done) {
          button.textContent = t('copied');
          setTimeout(() => {
            button.textContent = t('copy');
          }, 2000);
        }
      },
    },
    t('copy'),
  );
  return el('div', { class: 'secret-row' }, input, button);
}

/** The box that shows a new secret, once: what it is, the secret to copy, what it belongs to. */
const secretBox = (id, note, field, detail) => el('div', { class: 'secret-box', id }, el('p', {}, note), field, detail);

function renderKeys() {
  const parts = [];
  if (admin.newKey) {
    const { key, name, id } = admin.newKey;
    parts.push(secretBox('new-key', t('keyShownOnce'), secretField(key, 'new-key-value'), el('small', {}, `${name} · ${id}`)));
  }
  const rows = admin.keys.map((k) =>
    el(
      'tr',
      { 'data-key': k.id },
      el('td', {}, el('b', {}, k.name), el('div', { class: 'muted small' }, k.id)),
      el('td', {}, ROLE_NAMES[admin.lang()][k.role] || k.role),
      el('td', {}, tenantsText(k.tenants), k.types?.length ? el('div', { class: 'muted small' }, k.types.join(', ')) : null),
      el('td', {}, k.created_by),
      el('td', { class: 'when' }, time(k.created)),
      el('td', { class: 'when' }, k.expires ? time(k.expires) : t('never')),
      el('td', { class: 'when' }, k.last_used ? time(k.last_used) : ''),
      el(
        'td',
        { class: 'actions' },
        confirmButton(t('revoke'), t('confirmRevoke'), () => act(() => send('DELETE', `/auth/v1/keys/${encodeURIComponent(k.id)}`), t('keyRevoked')(k.name)), {
          'data-action': 'revoke',
        }),
      ),
    ),
  );
  parts.push(adminTable('keys', [t('keyName'), t('role'), t('tenants'), t('createdBy'), t('created'), t('expiresCol'), t('lastUsed'), t('actions')], rows));
  parts.push(
    inPageForm(
      { class: 'admin-form', id: 'new-key-form' },
      createKey,
      el('h3', {}, t('newKey')),
      field(t('keyName'), el('input', { name: 'name', required: true, autocomplete: 'off', maxlength: 64 })),
      field(t('role'), roleSelect('role')),
      tenantsField(),
      field(t('types'), el('input', { name: 'types', autocomplete: 'off', placeholder: 'WaterObserved, AirQualityObserved' }), t('typesHint')),
      field(t('expires'), el('input', { name: 'expires', type: 'date' })),
      el('button', { type: 'submit', class: 'primary' }, t('create')),
    ),
  );
  return parts;
}

async function createKey(form) {
  const body = { name: form.name.value.trim(), role: form.role.value, tenants: parseTenants(form.tenants.value) };
  const types = form.types.value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (types.length) body.types = types;
  // The end of the chosen day, in Vietnam's time.
  if (form.expires.value) body.expires = new Date(`${form.expires.value}T23:59:59+07:00`).toISOString();
  try {
    const created = await send('POST', '/auth/v1/keys', body);
    admin.keys = await getJson('/auth/v1/keys');
    admin.message = null;
    admin.newKey = created;
  } catch (e) {
    showMessage({ error: true, text: t('error')(e.message) });
    return;
  }
  render();
}

// ---------- audit log ----------

async function loadAudit() {
  const p = new URLSearchParams();
  for (const k of ['actor', 'tenant', 'action', 'from', 'to']) if (admin.audit.filter[k]) p.set(k, admin.audit.filter[k]);
  p.set('limit', AUDIT_PAGE);
  if (admin.audit.before) p.set('before', admin.audit.before);
  admin.audit.page = await getJson(`/auth/v1/audit?${p}`);
}

/** A datetime-local value (Vietnam's time) as ISO 8601 UTC. */
function vietnamTime(value) {
  if (!value) return '';
  const d = new Date(`${value.length === 16 ? `${value}:00` : value}+07:00`);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function renderAudit() {
  const f = admin.audit.filter;
  const input = (name, attrs = {}) => el('input', { name, ...attrs, value: f[`${name}Input`] ?? f[name] ?? '', autocomplete: 'off' });
  const form = inPageForm(
    { class: 'audit-filter', id: 'audit-filter' },
    filterAudit,
    field(t('actor'), input('actor', { placeholder: 'user:admin' })),
    field(t('tenant'), input('tenant', { placeholder: 'default' })),
    field(t('action'), input('action', { placeholder: 'auth.login' })),
    field(`${t('from')} (UTC+7)`, input('from', { type: 'datetime-local' })),
    field(`${t('to')} (UTC+7)`, input('to', { type: 'datetime-local' })),
    el(
      'div',
      { class: 'buttons' },
      el('button', { type: 'submit', class: 'primary' }, t('filter')),
      el(
        'button',
        {
          type: 'button',
          class: 'button',
          onclick: () => {
            admin.audit = { filter: {}, before: null, stack: [], page: null };
            load();
          },
        },
        t('clearFilter'),
      ),
    ),
  );
  const page = admin.audit.page || { records: [], next: null };
  const rows = page.records.map((r) =>
    el(
      'tr',
      { 'data-record': r.id, class: `outcome-${token(r.outcome)}` },
      el('td', { class: 'when' }, time(r.time)),
      el('td', {}, r.actor, r.role ? el('div', { class: 'muted small' }, r.role) : null),
      el('td', {}, el('code', {}, r.action)),
      el('td', {}, r.tenant === undefined || r.tenant === null ? '' : r.tenant === '' ? t('tenantDefault') : r.tenant),
      el('td', { class: 'targets' }, targetList(r.targets || []), r.failed?.length ? el('div', { class: 'warn small' }, r.failed.join(', ')) : null),
      el('td', {}, el('span', { class: `outcome ${token(r.outcome)}` }, t('outcomes')[r.outcome] || r.outcome)),
      el('td', { class: 'detail' }, r.detail || ''),
      el('td', { class: 'small' }, r.client || '', r.request_id ? el('div', { class: 'muted small' }, r.request_id) : null),
    ),
  );
  const pageNo = admin.audit.stack.length + 1;
  return [
    form,
    adminTable('audit', [t('time'), t('actor'), t('action'), t('tenant'), t('targets'), t('outcome'), t('detail'), `${t('client')} · ${t('requestId')}`], rows),
    el(
      'div',
      { class: 'pager' },
      el('span', { id: 'audit-info' }, t('auditPage')(page.records.length, pageNo)),
      el(
        'button',
        {
          id: 'audit-newest',
          disabled: pageNo === 1,
          onclick: () => {
            admin.audit.before = null;
            admin.audit.stack = [];
            load();
          },
        },
        t('newest'),
      ),
      el(
        'button',
        {
          id: 'audit-older',
          disabled: !page.next,
          onclick: () => {
            admin.audit.stack.push(admin.audit.before);
            admin.audit.before = page.next;
            load();
          },
        },
        t('older'),
      ),
    ),
  ];
}

/** The first targets of a record, the others behind a disclosure. */
function targetList(targets) {
  const SHOWN = 3;
  if (targets.length <= SHOWN) return targets.join(', ');
  return el(
    'span',
    {},
    targets.slice(0, SHOWN).join(', '),
    el('details', {}, el('summary', {}, t('moreTargets')(targets.length - SHOWN)), targets.slice(SHOWN).join(', ')),
  );
}

function filterAudit(form) {
  const tenant = form.tenant.value.trim();
  admin.audit = {
    filter: {
      actor: form.actor.value.trim(),
      tenant: tenant.toLowerCase() === 'mặc định' ? 'default' : tenant,
      action: form.action.value.trim(),
      from: vietnamTime(form.from.value),
      to: vietnamTime(form.to.value),
      fromInput: form.from.value,
      toInput: form.to.value,
    },
    before: null,
    stack: [],
    page: null,
  };
  load();
}
