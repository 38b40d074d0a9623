// Who is signed in to the operations centre, and every call the page makes to the
// server: a write carries the session's CSRF token (X-CSRF-Token), and a 401 from
// any call once signed in means the session has ended, which brings the login page
// back. The login page itself: user name, password, and the TOTP code when the
// server asks for one.
import { $, el, fmtTime } from './common.js';
import { AUTH_TEXT } from './i18n.js';

export const session = {
  me: null, // GET /auth/v1/me once signed in
  expired: false,
  onExpired: null, // set by the app: stop what runs before the login page shows
};

/** An error answer of the API (ProblemDetails). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function problemOf(r) {
  const text = await r.text().catch(() => '');
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text.slice(0, 300) || `HTTP ${r.status}` };
  }
}

/** A call to the server with the session's cookie, and its CSRF token on writes. The
 * body is JSON (`body`) or a file sent as it is (`file`, a Blob). */
export async function request(url, { method = 'GET', body, file, headers = {} } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (!['GET', 'HEAD'].includes(method) && session.me?.csrf) h['X-CSRF-Token'] = session.me.csrf;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (file) h['Content-Type'] = file.type || 'application/octet-stream';
  const r = await fetch(url, {
    method,
    headers: h,
    credentials: 'same-origin',
    body: file ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  if (r.status === 401 && session.me) sessionEnded();
  return r;
}

/** JSON from the server, or an ApiError. */
export async function getJson(url) {
  const r = await request(url);
  if (!r.ok) throw new ApiError(r.status, await problemOf(r));
  return r.json();
}

/** A page of a list: its items, how many there are in all (`X-Total-Count`) and the
 * next page's URL (`Link: <…>; rel="next"`), or an ApiError. */
export async function getPage(url) {
  const r = await request(url);
  if (!r.ok) throw new ApiError(r.status, await problemOf(r));
  const next = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get('Link') ?? '')?.[1] ?? null;
  return { items: await r.json(), total: Number(r.headers.get('X-Total-Count') ?? 0), next };
}

/** A write with a JSON body: the answer's JSON (null when empty), or an ApiError. */
export async function send(method, url, body) {
  const r = await request(url, { method, body });
  if (!r.ok) throw new ApiError(r.status, await problemOf(r));
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

/** A file posted as the body itself: the answer's JSON, or an ApiError. */
export async function sendFile(url, file) {
  const r = await request(url, { method: 'POST', file });
  if (!r.ok) throw new ApiError(r.status, await problemOf(r));
  return r.json();
}

/** Who is signed in, or null (401). */
export async function whoAmI() {
  const r = await fetch('/auth/v1/me', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  if (r.status === 401) return null;
  if (!r.ok) throw new ApiError(r.status, await problemOf(r));
  return r.json();
}

/** Checks the session after a failure that does not show a status (the event stream). */
export async function checkSession() {
  if (!session.me) return;
  try {
    const r = await fetch('/auth/v1/me', { credentials: 'same-origin' });
    if (r.status === 401) sessionEnded();
  } catch {
    /* the network is down: the stream retries by itself */
  }
}

function sessionEnded() {
  if (session.expired) return;
  session.expired = true;
  session.onExpired?.();
  showLogin({ expired: true });
}

export async function logout(everywhere = false) {
  try {
    await send('POST', `/auth/v1/logout${everywhere ? '?everywhere=true' : ''}`);
  } finally {
    // A fresh page: no state of the old session stays in memory.
    location.replace('/ioc/');
  }
}

// ---------- the login page ----------

let lang = () => 'vi';
let onLogin = null;
const t = (key) => AUTH_TEXT[lang()][key] ?? AUTH_TEXT.vi[key] ?? key;

/**
 * Sets up the login form once: `getLang` gives the page's language, `loggedIn(me)` is
 * called after a successful login.
 */
export function initLogin(getLang, loggedIn) {
  lang = getLang;
  onLogin = loggedIn;
  $('#login-form').addEventListener('submit', submitLogin);
}

/** The login page's words, in the page's language. */
export function translateLogin() {
  for (const e of document.querySelectorAll('#login [data-auth]')) e.textContent = t(e.dataset.auth);
  const err = $('#login-error');
  if (err.dataset.key) err.textContent = loginMessage(err.dataset.key, err.dataset.arg);
}

export function showLogin({ expired = false } = {}) {
  document.body.dataset.view = 'login';
  $('#app').hidden = true;
  $('#login').hidden = false;
  $('#login-note').hidden = !expired;
  translateLogin();
  const form = $('#login-form');
  (form.username.value ? form.password : form.username).focus();
}

function loginMessage(key, arg) {
  if (key === 'errLocked') return t('errLocked')(fmtTime(lang(), arg));
  if (key === 'detail') return `${t('errOther')}: ${arg}`;
  return t(key);
}

function showError(key, arg = '') {
  const err = $('#login-error');
  err.dataset.key = key;
  err.dataset.arg = arg;
  err.textContent = loginMessage(key, arg);
  err.hidden = false;
}

/** Which of the server's refusals this is (its `detail` says why). */
function refusal(detail) {
  const locked = /locked .* until (\S+)/.exec(detail);
  if (locked) return ['errLocked', locked[1]];
  if (/TOTP code is required/.test(detail)) return ['errTotpRequired'];
  if (/wrong TOTP/.test(detail)) return ['errTotpWrong'];
  if (/second factor is required/.test(detail)) return ['errMfaEnrol'];
  if (/wrong user name or password/.test(detail)) return ['errWrong'];
  return ['detail', detail];
}

async function submitLogin(e) {
  e.preventDefault();
  const form = e.target;
  const button = form.querySelector('button[type="submit"]');
  const body = { username: form.username.value.trim(), password: form.password.value };
  if (!$('#totp-row').hidden && form.totp.value.trim()) body.totp = form.totp.value.trim();
  button.disabled = true;
  button.textContent = t('loggingIn');
  try {
    const r = await fetch('/auth/v1/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    if (!r.ok) {
      const problem = await problemOf(r);
      const [key, arg] = refusal(problem.detail || problem.title || String(r.status));
      if (key === 'errTotpRequired' || key === 'errTotpWrong') {
        $('#totp-row').hidden = false;
        form.totp.value = '';
        form.totp.focus();
      } else {
        form.password.value = '';
        form.password.focus();
      }
      showError(key, arg);
      return;
    }
    // The cookie the login set must now name a session; if it does not, say so.
    const me = await whoAmI();
    if (!me) {
      showError('errNoSession');
      return;
    }
    form.password.value = '';
    form.totp.value = '';
    $('#login-error').hidden = true;
    onLogin?.(me);
  } catch (_err) {
    showError('errNetwork');
  } finally {
    button.disabled = false;
    button.textContent = t('loginButton');
  }
}

// ---------- the user menu ----------

/** The user menu in the header: who, with which role; log out, or everywhere. */
export function renderUserMenu(roleNames) {
  const me = session.me;
  const box = $('#user');
  const menu = el(
    'div',
    { class: 'user-menu', id: 'user-menu', hidden: true, role: 'menu' },
    el(
      'div',
      { class: 'user-who' },
      el('b', { class: 'user-name' }, me.name || me.actor),
      el('span', { class: 'user-role' }, roleNames[lang()][me.role] || me.role),
    ),
    el('button', { id: 'logout', role: 'menuitem', onclick: () => logout(false) }, t('logout')),
    el('button', { id: 'logout-everywhere', role: 'menuitem', onclick: () => logout(true) }, t('logoutEverywhere')),
  );
  const toggle = el(
    'button',
    {
      class: 'user-button',
      id: 'user-button',
      'aria-haspopup': 'menu',
      'aria-expanded': 'false',
      title: t('userMenu'),
      onclick: (e) => {
        e.stopPropagation();
        menu.hidden = !menu.hidden;
        toggle.setAttribute('aria-expanded', String(!menu.hidden));
      },
    },
    el('span', { class: 'user-initial' }, (me.name || me.actor || '?').slice(0, 1).toUpperCase()),
    el('span', { class: 'user-label' }, me.name || me.actor),
  );
  box.replaceChildren(toggle, menu);
  box.hidden = false;
}

document.addEventListener('click', (e) => {
  const menu = document.getElementById('user-menu');
  if (menu && !menu.hidden && !menu.contains(e.target)) {
    menu.hidden = true;
    document.getElementById('user-button')?.setAttribute('aria-expanded', 'false');
  }
});
