// The public page, the login to the operations centre and its admin pages, in headless
// Chromium against a real `dothi demo`: anonymous visitors get the public page and the
// login page; a user logs in (or fails to), logs out; an admin manages users and keys
// and reads the audit log. Every page runs under its Content-Security-Policy.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { test } from 'node:test';
import { api, loginWithLink, openPage, SCREENSHOTS, withDemoAndBrowser } from './server.mjs';

const GAUGE = 'urn:ngsi-ld:WaterObserved:demo-thach-han';
const OPERATOR = { username: 'dieuhanh.ha', password: 'Lũ-sông-Thạch-Hãn-2025' };
let demo;
let browser;
let admin; // the admin's page, signed in with the login link
const contexts = [];

withDemoAndBrowser(async (started) => {
  ({ demo, browser } = started);
  await demo.api('POST', '/auth/v1/users', { ...OPERATOR, role: 'operator', tenants: [''] });
});

/** The TOTP code of a base32 secret now (RFC 6238: HMAC-SHA-1, 30 s, 6 digits). */
function totp(secret, at = Date.now()) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = [];
  let acc = 0;
  let bits = 0;
  for (const c of secret.replace(/=+$/, '').toUpperCase()) {
    acc = ((acc << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bytes.push((acc >> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const h = createHmac('sha1', Buffer.from(bytes)).update(counter).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

const shot = (name, p) => p.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });

/** A fresh browser (no cookie), its page watched for refusals of the CSP. */
async function freshPage(options = { viewport: { width: 1920, height: 1080 } }) {
  const page = await openPage(browser, options);
  contexts.push(page.context());
  return page;
}

/** Opens the section `name` of the admin's page, and waits until it has loaded and
 * shows `selector`. */
async function adminSection(name, selector) {
  await admin.locator(`#admin-tabs [data-section="${name}"]`).click();
  await admin.waitForSelector(`#admin-body[data-loaded="true"] ${selector}`);
}

async function loginWithPassword(page, { username, password }) {
  await page.fill('#login-form input[name="username"]', username);
  await page.fill('#login-form input[name="password"]', password);
  await page.locator('#login-form button[type="submit"]').click();
}

test('the public page loads without a login and shows the gauges', async () => {
  const page = await freshPage();
  const asked = [];
  page.on('request', (r) => asked.push(new URL(r.url()).pathname));
  const r = await page.goto(`${demo.base}/`);
  assert.match(r.headers()['content-security-policy'], /default-src 'self'/);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await page.locator('path[data-commune]').count(), 78);
  assert.match(await page.locator('h1').innerText(), /Thông tin đô thị thông minh/);
  // The four river gauges with their level and state, the air and weather stations.
  const gauges = page.locator('#gauge-list li[data-id]');
  assert.equal(await gauges.count(), 4);
  const thachHan = page.locator(`#gauge-list li[data-id="${GAUGE}"]`);
  assert.match(await thachHan.innerText(), /Thạch Hãn[\s\S]*\d+,\d+ m/);
  assert.equal(await thachHan.locator('.bar-mark').count(), 3);
  assert.equal(await page.locator('#air-list li[data-id]').count(), 13);
  assert.equal(await page.locator('#weather-list li[data-id]').count(), 12);
  assert.equal(await page.locator('.leaflet-marker-pane .mk[data-id]').count(), 4 + 13 + 12);
  // The stations are demo data, and the page says so; citizen reports and open data
  // have their sections (public.test.mjs looks into them).
  assert.match(await page.locator('#demo-banner').innerText(), /dữ liệu minh họa/);
  assert.match(await page.locator('#reports').innerText(), /Phản ánh hiện trường/);
  assert.match(await page.locator('#opendata').innerText(), /Dữ liệu mở/);
  // The plan's scorecard is no longer to come: its summary is on the page.
  assert.equal(await page.locator('#plan-scorecard .pub-kpi').count(), 14);
  assert.match(await page.locator('#about').innerText(), /78 xã, phường và đặc khu/);
  // Public data only: nothing of the operations centre's or the NGSI-LD API.
  assert.deepEqual(
    asked.filter((p) => p.startsWith('/ioc/') || p.startsWith('/ngsi-ld/') || p.startsWith('/auth/')),
    [],
  );
  await shot('public-1920x1080', page);

  // A gauge past its level III turns to alarm III on the next reading of the page.
  await demo.api('PATCH', `/ngsi-ld/v1/entities/${GAUGE}/attrs`, {
    waterLevel: { type: 'Property', value: 7.2, observedAt: new Date().toISOString() },
  });
  await page.evaluate(() => window.dothiPublic.refresh());
  await page.waitForSelector(`#gauge-list li.st-alarm3[data-id="${GAUGE}"]`);
  assert.match(await thachHan.locator('.badge').innerText(), /Báo động III/);
  assert.match(await page.locator('.summary-card[data-layer="water"]').innerText(), /vượt mức báo động/);
  await page.waitForSelector(`.leaflet-marker-pane .mk.st-alarm3[data-id="${GAUGE}"]`, { state: 'attached' });

  // A station's name opens its popup on the map.
  await thachHan.locator('.station-name').click();
  await page.waitForSelector(`.leaflet-popup .popup[data-id="${GAUGE}"]`);
  assert.match(await page.locator('.leaflet-popup').innerText(), /7,2 m/);

  // English, and a layer turned off.
  await page.locator('.lang [data-lang="en"]').click();
  assert.equal(await page.locator('h1').innerText(), 'Smart city information');
  assert.match(await page.locator('#about').innerText(), /About the data/);
  await page.locator('.chip[data-layer="weather"]').click();
  assert.equal(await page.locator('.leaflet-marker-pane .mk.ly-weather').count(), 0);
  await page.locator('.lang [data-lang="vi"]').click();
  assert.deepEqual(page.cspViolations, []);
});

test('the public page on a phone: the map first, then the stations', async () => {
  const page = await freshPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await page.goto(`${demo.base}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const map = await page.locator('#map').boundingBox();
  const gauges = await page.locator('#gauges').boundingBox();
  assert.ok(map.width <= 390 && map.y < gauges.y);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width} px wide`);
  await shot('public-390x844', page);
  await page.locator('#gauges').scrollIntoViewIfNeeded();
  await shot('public-gauges-390x844', page);
  assert.deepEqual(page.cspViolations, []);
});

test('/ioc/ without a session shows the login page', async () => {
  const page = await freshPage();
  const asked = [];
  page.on('request', (r) => asked.push(new URL(r.url()).pathname));
  await page.goto(`${demo.base}/ioc/`);
  await page.waitForSelector('#login:not([hidden]) #login-form');
  assert.equal(await page.locator('body').getAttribute('data-view'), 'login');
  assert.ok(await page.locator('#app').isHidden());
  assert.ok(await page.locator('#totp-row').isHidden());
  assert.match(await page.locator('#login').innerText(), /Đăng nhập[\s\S]*Tên đăng nhập[\s\S]*Mật khẩu/);
  // The app's data is not even asked for.
  assert.deepEqual(
    asked.filter((p) => p.startsWith('/ioc/api/') && p !== '/ioc/api/config'),
    [],
  );
  await shot('login-1920x1080', page);
  await page.locator('#login .lang [data-lang="en"]').click();
  assert.match(await page.locator('#login').innerText(), /Log in[\s\S]*User name[\s\S]*Password/);
  await page.locator('#login .lang [data-lang="vi"]').click();
  // /ioc without the slash is the same page.
  await page.goto(`${demo.base}/ioc`);
  await page.waitForSelector('#login:not([hidden]) #login-form');
  assert.deepEqual(page.cspViolations, []);
});

test('a wrong password shows the error; the right one opens the IOC; logging out closes it', async () => {
  const page = await freshPage();
  await page.goto(`${demo.base}/ioc/`);
  await page.waitForSelector('#login-form');
  await loginWithPassword(page, { username: OPERATOR.username, password: 'not-the-password-1' });
  await page.waitForSelector('#login-error:not([hidden])');
  assert.equal(await page.locator('#login-error').innerText(), 'Sai tên đăng nhập hoặc mật khẩu.');
  assert.ok(await page.locator('#app').isHidden());
  await shot('login-error-1920x1080', page);

  await loginWithPassword(page, OPERATOR);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await page.locator('path[data-commune]').count(), 78);
  // The user menu: name and role; an operator has no admin pages.
  await page.locator('#user-button').click();
  assert.match(await page.locator('#user-menu').innerText(), /dieuhanh\.ha[\s\S]*Điều hành/);
  assert.ok(await page.locator('.tab[data-view="admin"]').isHidden());
  const refused = await page.evaluate(async () => (await fetch('/auth/v1/users')).status);
  assert.equal(refused, 403);
  await page.locator('#logout').click();
  await page.waitForSelector('#login:not([hidden]) #login-form');
  // The session is over on the server too.
  const status = await page.evaluate(async () => (await fetch('/ioc/api/summary')).status);
  assert.equal(status, 401);
  assert.deepEqual(page.cspViolations, []);
});

test('logging out everywhere ends the other sessions: their page returns to the login', async () => {
  const first = await freshPage();
  const second = await freshPage();
  for (const page of [first, second]) {
    await page.goto(`${demo.base}/ioc/`);
    await page.waitForSelector('#login-form');
    await loginWithPassword(page, OPERATOR);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  }
  await first.locator('#user-button').click();
  await first.locator('#logout-everywhere').click();
  await first.waitForSelector('#login:not([hidden])');
  // The other page finds out at its next call to the server: one a click makes, or one
  // of its own (the live updates refresh the tiles), which may come first.
  await second
    .locator('.tab[data-view="explorer"]')
    .click({ timeout: 5_000 })
    .catch(() => {});
  await second.waitForSelector('#login:not([hidden]) #login-note:not([hidden])');
  assert.match(await second.locator('#login-note').innerText(), /hết hạn/);
  assert.ok(await second.locator('#app').isHidden());
  // Logging in again there opens the app afresh (a new page: nothing of the old
  // session stays in memory).
  await Promise.all([second.waitForNavigation(), loginWithPassword(second, OPERATOR)]);
  await second.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.ok(await second.locator('#login').isHidden());
});

test('the one-time login link opens the IOC as admin, once', async () => {
  admin = await freshPage();
  await loginWithLink(admin, demo);
  assert.equal(new URL(admin.url()).pathname, '/ioc/');
  assert.equal(await admin.locator('path[data-commune]').count(), 78);
  assert.match(await admin.locator('#user-button').innerText(), /admin/);
  await admin.locator('#user-button').click();
  assert.match(await admin.locator('#user-menu').innerText(), /admin[\s\S]*Quản trị/);
  await admin.keyboard.press('Escape');
  await admin.locator('h1').click();
  assert.ok(await admin.locator('.tab[data-view="admin"]').isVisible());
  const again = await fetch(demo.loginLink, { redirect: 'manual' });
  assert.equal(again.status, 401);
});

test('a write with the session cookie needs the CSRF token, which the page sends', async () => {
  const statuses = await admin.evaluate(async () => {
    const body = JSON.stringify({ name: 'csrf-check', role: 'viewer', tenants: [''] });
    const headers = { 'Content-Type': 'application/json' };
    const without = await fetch('/auth/v1/keys', { method: 'POST', headers, body });
    const me = await (await fetch('/auth/v1/me')).json();
    const withToken = await fetch('/auth/v1/keys', { method: 'POST', headers: { ...headers, 'X-CSRF-Token': me.csrf }, body });
    const created = await withToken.json();
    await fetch(`/auth/v1/keys/${created.id}`, { method: 'DELETE', headers: { 'X-CSRF-Token': me.csrf } });
    return [without.status, withToken.status];
  });
  assert.deepEqual(statuses, [403, 201]);
});

test('an admin creates an API key and sees it once, then revokes it', async () => {
  await admin.locator('.tab[data-view="admin"]').click();
  await adminSection('keys', '#new-key-form');
  const form = admin.locator('#new-key-form');
  await form.locator('input[name="name"]').fill('tram-bom-dong-ha');
  await form.locator('select[name="role"]').selectOption('device');
  await form.locator('input[name="types"]').fill('WaterObserved');
  await form.locator('button[type="submit"]').click();
  await admin.waitForSelector('#new-key #new-key-value');
  const key = await admin.locator('#new-key-value').inputValue();
  assert.match(key, /^dothi_\S{20,}$/);
  const row = admin.locator('#keys tbody tr', { hasText: 'tram-bom-dong-ha' });
  assert.equal(await row.count(), 1);
  assert.match(await row.innerText(), /Thiết bị[\s\S]*mặc định/);
  await shot('admin-keys-1920x1080', admin);
  // The key works, as the device it was made for.
  const me = await api(demo.base, 'GET', '/auth/v1/me', undefined, { Authorization: `Bearer ${key}` });
  assert.equal(me.role, 'device');
  assert.equal(me.name, 'tram-bom-dong-ha');
  // Shown once: back on the page, it is gone, and the list never had it.
  await admin.locator('#admin-tabs [data-section="users"]').click();
  await adminSection('keys', '#keys');
  assert.equal(await admin.locator('#new-key').count(), 0);
  assert.ok(!(await admin.locator('#view-admin').innerText()).includes(key));
  const listed = await demo.api('GET', '/auth/v1/keys');
  assert.ok(!JSON.stringify(listed).includes(key));
  // Revoked with two clicks: the key stops working.
  const revoke = admin.locator('#keys tbody tr', { hasText: 'tram-bom-dong-ha' }).locator('[data-action="revoke"]');
  await revoke.click();
  assert.equal(await revoke.getAttribute('data-armed'), 'true');
  await revoke.click();
  await admin.waitForSelector('.admin-message');
  assert.equal(await admin.locator('#keys tbody tr', { hasText: 'tram-bom-dong-ha' }).count(), 0);
  const after = await fetch(`${demo.base}/auth/v1/me`, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(after.status, 401);
});

test('an admin adds a user, is told the password policy, resets a password and deletes the user', async () => {
  await adminSection('users', '#new-user');
  const form = admin.locator('#new-user');
  await form.locator('input[name="username"]').fill('canbo.xem');
  await form.locator('input[name="password"]').fill('password1234');
  await form.locator('select[name="role"]').selectOption('viewer');
  await form.locator('button[type="submit"]').click();
  // The server's reason, shown as it says it (a common password).
  await admin.waitForSelector('.admin-message.error');
  assert.match(await admin.locator('.admin-message.error').innerText(), /Lỗi: .*common/i);
  await form.locator('input[name="password"]').fill('Mưa-lớn-ở-Đông-Hà-2025');
  await form.locator('button[type="submit"]').click();
  const row = admin.locator('#users tr[data-user="canbo.xem"]');
  await row.waitFor();
  assert.match(await row.innerText(), /Xem[\s\S]*mặc định/);
  await shot('admin-users-1920x1080', admin);
  // A new password for the user: the old one stops working, the new one works.
  await row.locator('[data-action="password"]').click();
  await admin.locator('tr.inline-form input[name="password"]').fill('Nước-lên-nhanh-quá-2025');
  await admin.locator('tr.inline-form button[type="submit"]').click();
  await admin.locator('.admin-message', { hasText: 'Đã đổi mật khẩu của canbo.xem.' }).waitFor();
  const login = (password) =>
    fetch(`${demo.base}/auth/v1/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'canbo.xem', password }),
    });
  assert.equal((await login('Mưa-lớn-ở-Đông-Hà-2025')).status, 401);
  assert.equal((await login('Nước-lên-nhanh-quá-2025')).status, 200);
  // Deleted with two clicks.
  const remove = admin.locator('#users tr[data-user="canbo.xem"] [data-action="delete"]');
  await remove.click();
  await remove.click();
  await admin.waitForSelector('#users tr[data-user="canbo.xem"]', { state: 'detached' });
  assert.equal((await login('Nước-lên-nhanh-quá-2025')).status, 401);
});

test('an admin gives a user a TOTP secret; the login then asks for the code', async () => {
  const user = { username: 'truongca.dem', password: 'Ca-đêm-trực-lũ-2025' };
  await demo.api('POST', '/auth/v1/users', { ...user, role: 'operator', tenants: [''] });
  await adminSection('users', '#users');
  const enrol = admin.locator(`#users tr[data-user="${user.username}"] [data-action="totp"]`);
  await enrol.click();
  await enrol.click();
  await admin.waitForSelector('#new-totp #totp-secret');
  const secret = await admin.locator('#totp-secret').inputValue();
  assert.match(secret, /^[A-Z2-7]{32}$/);
  assert.match(await admin.locator('#new-totp').innerText(), /otpauth:\/\/totp\//);
  assert.match(await admin.locator(`#users tr[data-user="${user.username}"]`).innerText(), /có/);

  const page = await freshPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await page.goto(`${demo.base}/ioc/`);
  await page.waitForSelector('#login-form');
  await loginWithPassword(page, user);
  await page.waitForSelector('#totp-row:not([hidden])');
  assert.match(await page.locator('#login-error').innerText(), /mã xác thực hai lớp/);
  await page.fill('#login-form input[name="totp"]', '000000' === totp(secret) ? '111111' : '000000');
  await page.fill('#login-form input[name="password"]', user.password);
  await page.locator('#login-form button[type="submit"]').click();
  await page.waitForFunction(() => /không đúng/.test(document.querySelector('#login-error').textContent));
  await shot('login-totp-390x844', page);
  await page.fill('#login-form input[name="password"]', user.password);
  await page.fill('#login-form input[name="totp"]', totp(secret));
  await page.locator('#login-form button[type="submit"]').click();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await page.locator('path[data-commune]').count(), 78);
  assert.deepEqual(page.cspViolations, []);
});

test('the audit page lists the logins, filters and pages, and shows values as text', async () => {
  // A failed login whose user name is HTML.
  const probe = '<img src=x onerror=window.pwned=1>';
  const r = await fetch(`${demo.base}/auth/v1/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: probe, password: 'whatever-it-is' }),
  });
  assert.equal(r.status, 401);
  await adminSection('audit', '#audit');
  const table = admin.locator('#audit tbody');
  assert.match(await table.innerText(), /auth\.login-link/);
  assert.match(await table.innerText(), /user:admin/);
  assert.ok((await table.innerText()).includes(`user:${probe}`));
  assert.equal(await admin.locator('#audit img').count(), 0);
  assert.equal(await admin.evaluate(() => window.pwned), undefined);
  await shot('admin-audit-1920x1080', admin);

  // The operator's logins, the failed one and the good ones.
  const filter = admin.locator('#audit-filter');
  await filter.locator('input[name="action"]').fill('auth.login');
  await filter.locator('input[name="actor"]').fill(`user:${OPERATOR.username}`);
  await filter.locator('button[type="submit"]').click();
  await admin.waitForSelector('#admin-body[data-loaded="true"] #audit');
  const rows = admin.locator('#audit tbody tr[data-record]');
  assert.ok((await rows.count()) >= 3);
  for (const text of await rows.allInnerTexts()) assert.match(text, /auth\.login/);
  assert.match(await table.innerText(), /thành công/);
  // The wrong password was recorded as the anonymous caller it came from.
  await filter.locator('input[name="actor"]').fill('anonymous');
  await filter.locator('button[type="submit"]').click();
  await admin.waitForSelector('#admin-body[data-loaded="true"] #audit');
  assert.match(await table.innerText(), /sai thông tin đăng nhập[\s\S]*wrong user name or password/);

  // Paging: every record, 50 a page, older ones behind `next` (60 refusals of
  // anonymous calls make sure there are more than 50).
  await Promise.all(Array.from({ length: 60 }, () => fetch(`${demo.base}/ngsi-ld/v1/types`)));
  await admin.waitForTimeout(500);
  await admin.locator('#audit-filter button[type="button"]').click();
  await admin.waitForSelector('#admin-body[data-loaded="true"] #audit');
  assert.equal(await rows.count(), 50);
  const firstPage = await rows.first().getAttribute('data-record');
  await admin.locator('#audit-older').click();
  await admin.waitForSelector('#admin-body[data-loaded="true"] #audit');
  assert.match(await admin.locator('#audit-info').innerText(), /trang 2/);
  assert.ok(Number(await rows.first().getAttribute('data-record')) < Number(firstPage));
  await admin.locator('#audit-newest').click();
  await admin.waitForSelector('#admin-body[data-loaded="true"] #audit');
  assert.equal(await rows.first().getAttribute('data-record'), firstPage);
  assert.deepEqual(admin.cspViolations, []);
});
