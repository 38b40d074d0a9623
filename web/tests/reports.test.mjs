// Citizen reports in headless Chromium on a phone's viewport against a real `dothi
// demo`: a resident files a report with a photo from the GPS position, sees a report
// already open nearby and supports it, gets a tracking link, sees and erases their
// contact there; a report made without signal waits on the phone and is sent when the
// connection returns; staff work the inbox (tiles, a filter, an action, a bulk action,
// the reporter's contact) and an urgent report raises a notice in the operations
// centre.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { drawJpeg, loginWithLink, openPage, SCREENSHOTS, withDemoAndBrowser } from './server.mjs';

// Đông Hà, inside the province and the ward's boundary.
const DONG_HA = { latitude: 16.8163, longitude: 107.1003 };
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const CONTACT_PHONE = '0905 112 233';

let demo;
let browser;
let photo; // a JPEG drawn by the browser

withDemoAndBrowser(async (started) => {
  ({ demo, browser } = started);
  photo = await drawJpeg(browser, 'cong-tac.jpg', '#6b8e23', true);
});

/** A report filed over Open311 with the admin key (staff are not rate-limited). */
async function file(fields) {
  const r = await fetch(`${demo.base}/open311/v2/requests.json`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${demo.key}`, 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ jurisdiction_id: 'quangtri', lat: DONG_HA.latitude, long: DONG_HA.longitude, ...fields }),
  });
  const body = await r.json();
  assert.equal(r.status, 201, JSON.stringify(body));
  return body[0];
}

async function phonePage(options = {}) {
  const page = await openPage(browser, { ...PHONE, geolocation: DONG_HA, permissions: ['geolocation'], ...options });
  return { context: page.context(), page };
}

test('a resident files a report with a photo, supports one nearby, tracks it, erases their contact and rates the result', async () => {
  // Someone reported a blocked drain here already.
  const earlier = await file({ service_code: 'thoat-nuoc', description: 'Cống trước chợ bị tắc, nước tràn ra đường' });
  const { context, page } = await phonePage();
  const calls = [];
  page.on('request', (r) => calls.push(new URL(r.url()).pathname));
  await page.goto(`${demo.base}/report/`);
  await page.waitForSelector('body[data-ready="true"]');
  // Categories in groups, with icons; urgent ones marked.
  assert.ok((await page.locator('.rp-group').count()) >= 5);
  assert.ok((await page.locator('.rp-cat').count()) >= 12);
  assert.match(await page.locator('.rp-cat[data-code="lu-lut-cuu-ho"]').innerText(), /Khẩn cấp/);
  await page.locator('.rp-cat[data-code="thoat-nuoc"]').click();
  await page.locator('#gps').click();
  await page.waitForFunction(() => /16\.8163/.test(document.querySelector('#place').textContent));
  // The open report of the same category within 50 m, which can be supported instead.
  const near = page.locator(`#nearby li[data-id="${earlier.service_request_id}"]`);
  await near.waitFor();
  await near.locator('button').click();
  await near.locator('.rp-supported', { hasText: '1 người ủng hộ' }).waitFor();
  // The resident files their own anyway, with a photo and a contact.
  await page.locator('#photos').setInputFiles(photo);
  await page.locator('#photo-list img').waitFor();
  await page.locator('#description').fill('Cống thoát nước bị tắc, mùi hôi');
  await page.locator('#contact-name').fill('Lê Thị Hoa');
  await page.locator('#contact-phone').fill(CONTACT_PHONE);
  // A contact needs the consent first.
  await page.locator('#submit').click();
  assert.match(await page.locator('#form-error').innerText(), /đồng ý/);
  assert.match(await page.locator('#consent-version').innerText(), /2026-01/);
  await page.locator('#consent').check();
  await page.screenshot({ path: path.join(SCREENSHOTS, 'report-form-390x844.png'), fullPage: true });
  await page.locator('#submit').click();
  const id = (await page.locator('#done-code').innerText()).trim();
  const link = await page.locator('#done-link').getAttribute('href');
  assert.match(link, /\/report\/track#[0-9a-f]{32}$/);
  assert.equal(await page.locator('#mine a', { hasText: id }).count(), 1);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'report-sent-390x844.png') });

  // What the server keeps: the point, the photo re-encoded, the consent's version
  // with the contact (which only staff with the right read).
  const report = await demo.api('GET', `/reports/v1/requests/${id}`);
  assert.equal(report.service_code, 'thoat-nuoc');
  assert.deepEqual(report.location.coordinates, [DONG_HA.longitude, DONG_HA.latitude]);
  assert.equal(report.mediaUrls.length, 1);
  assert.equal(report.hasContact, true);
  const seen = await demo.api('GET', `/reports/v1/requests/${id}/reporter`);
  assert.equal(seen.reporter.contact.phone, CONTACT_PHONE);
  assert.equal(seen.reporter.consent_version, '2026-01');
  assert.equal((await demo.api('GET', `/reports/v1/requests/${earlier.service_request_id}`)).supporters, 1);

  // The tracking page: status, timeline, the photo, and the reporter's own contact.
  await page.goto(link);
  await page.waitForSelector('#track-code');
  assert.equal((await page.locator('#track-code').innerText()).trim(), id);
  assert.equal(await page.locator('#track-status').getAttribute('data-stage'), 'received');
  assert.ok((await page.locator('#track-timeline li').count()) >= 1);
  assert.equal(await page.locator('.rp-photos img').count(), 1);
  assert.match(await page.locator('#track-contact').innerText(), /0905 112 233[\s\S]*2026-01/);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'report-track-390x844.png'), fullPage: true });
  // Erasing takes a second click; then the contact is gone, the report stays.
  await page.locator('#erase').click();
  await page.locator('#erase', { hasText: 'lần nữa' }).click();
  await page.locator('#track-contact', { hasText: 'Đã xóa thông tin liên hệ' }).waitFor();
  assert.equal((await demo.api('GET', `/reports/v1/requests/${id}/reporter`)).reporter, null);
  assert.equal((await demo.api('GET', `/reports/v1/requests/${id}`)).service_request_id, id);
  // English.
  await page.locator('.lang button[data-lang="en"]').click();
  assert.equal(await page.locator('#track-status').innerText(), 'Received');
  // Resolved by staff, the report is rated from the tracking page.
  for (const action of [{ action: 'accept' }, { action: 'resolve', result: 'Đã nạo vét cống' }]) {
    await demo.api('POST', `/reports/v1/requests/${id}/actions`, action);
  }
  await page.reload();
  await page.waitForSelector('#track-code');
  assert.equal(await page.locator('#track-status').innerText(), 'Resolved');
  assert.match(await page.locator('#track').innerText(), /Đã nạo vét cống/);
  await page.locator('#rating').selectOption('4');
  await page.locator('.rp-rate button[type="submit"]').click();
  await page.locator('#track', { hasText: 'You rated it 4/5.' }).waitFor();
  assert.equal((await demo.api('GET', `/reports/v1/requests/${id}`)).rating, 4);

  // The page asked only its public routes, never the staff's or the NGSI-LD API.
  assert.ok(!calls.some((p) => p.startsWith('/ngsi-ld/') || p.startsWith('/ioc/api') || /^\/reports\/v1\/requests(\/[^/]+)?$/.test(p)), calls.join(' '));
  assert.deepEqual(page.cspViolations, []);
  await context.close();
});

test('the page opens without signal; a report made then waits on the phone and is sent when the connection returns', async () => {
  const { context, page } = await phonePage();
  await page.goto(`${demo.base}/report/`);
  await page.waitForSelector('body[data-ready="true"]');
  // Once opened with signal, the page opens again without it (its service worker).
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
  // Offline: the page's requests, and the service worker's (which setOffline does not
  // reach), fail.
  const cut = [];
  const noSignal = (route) => {
    if (route.request().serviceWorker()) cut.push(new URL(route.request().url()).pathname);
    return route.abort('internetdisconnected');
  };
  await context.setOffline(true);
  await context.route('**', noSignal);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.locator('#offline-note').waitFor();
  assert.equal(await page.locator('#load-error').isHidden(), true);
  assert.ok(cut.includes('/report/'), `the service worker asked the network for the page: ${cut.join(' ')}`);
  await page.locator('.rp-cat[data-code="den-chieu-sang"]').click();
  // The pin by a tap on the map.
  await page.locator('#report-map').scrollIntoViewIfNeeded();
  const point = await page.evaluate(({ latitude, longitude }) => {
    const map = window.dothiReport.form.map;
    map.setView([latitude, longitude], 17, { animate: false });
    const p = map.latLngToContainerPoint([latitude, longitude]);
    const box = map.getContainer().getBoundingClientRect();
    return { x: box.left + p.x, y: box.top + p.y };
  }, DONG_HA);
  await page.mouse.click(point.x, point.y);
  await page.waitForFunction(() => /16\.816/.test(document.querySelector('#place').textContent));
  await page.locator('#photos').setInputFiles(photo);
  await page.locator('#photo-list img').waitFor();
  await page.locator('#description').fill('Đèn đường không sáng cả tuần nay');
  await page.locator('#submit').click();
  await page.locator('#queued-note').waitFor();
  assert.match(await page.locator('#outbox-count').innerText(), /1 phản ánh đang chờ mạng/);
  // Kept in IndexedDB with its photo.
  const kept = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const req = indexedDB.open('dothi-reports');
        req.onsuccess = () => {
          const all = req.result.transaction('outbox').objectStore('outbox').getAll();
          all.onsuccess = () => resolve(all.result.map((i) => ({ photos: i.photos.length, bytes: i.photos[0]?.blob.size, fields: i.fields.length })));
        };
      }),
  );
  assert.equal(kept.length, 1);
  assert.equal(kept[0].photos, 1);
  assert.equal(kept[0].bytes, photo.buffer.length);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'report-offline-390x844.png') });

  // The connection returns: it is sent, and the outbox is empty.
  await context.unroute('**', noSignal);
  await context.setOffline(false);
  const sent = page.locator('#outbox .rp-sent');
  await sent.waitFor({ timeout: 20_000 });
  const id = (await sent.innerText()).match(/mã (\S+)\./)[1];
  assert.equal(await page.locator('#outbox-count').count(), 0);
  const report = await demo.api('GET', `/reports/v1/requests/${id}`);
  assert.equal(report.service_code, 'den-chieu-sang');
  assert.equal(report.description, 'Đèn đường không sáng cả tuần nay');
  assert.equal(report.mediaUrls.length, 1);
  assert.ok(Date.parse(report.attributes.recorded_offline_at) < Date.parse(report.requested_datetime));
  assert.deepEqual(page.cspViolations, []);

  // Another report made without signal, and the page closed before the connection
  // returns: the service worker sends it when the browser hands it the background sync
  // the page asked for. The test hands it over as the browser's developer tools do,
  // since the browser's own trigger is the machine's real network coming back.
  await context.setOffline(true);
  await context.route('**', noSignal);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.locator('.rp-cat[data-code="den-chieu-sang"]').click();
  await page.locator('#report-map').scrollIntoViewIfNeeded();
  await page.evaluate(({ latitude, longitude }) => window.dothiReport.form.map.setView([latitude, longitude], 17, { animate: false }), DONG_HA);
  await page.mouse.click(point.x, point.y);
  await page.waitForFunction(() => /16\.816/.test(document.querySelector('#place').textContent));
  const description = 'Cột đèn nghiêng trước chợ, gửi khi trang đã đóng';
  await page.locator('#description').fill(description);
  // The browser may fire the sync at once (its network is up) and, failing, keep it
  // for later out of sight of getTags(): the page's request is watched instead.
  await page.evaluate(() => {
    window.askedSyncs = [];
    const register = SyncManager.prototype.register;
    SyncManager.prototype.register = function (tag) {
      window.askedSyncs.push(tag);
      return register.call(this, tag);
    };
  });
  await page.locator('#submit').click();
  await page.locator('#queued-note').waitFor();
  await page.waitForFunction(() => window.askedSyncs.length > 0);
  assert.deepEqual(await page.evaluate(() => window.askedSyncs), ['dothi-report-outbox'], 'the page asked for a background sync');
  await page.close();
  await context.unroute('**', noSignal);
  await context.setOffline(false);
  const listedAgain = async () => (await demo.api('GET', '/reports/v1/requests?limit=50')).filter((r) => r.description === description);
  assert.equal((await listedAgain()).length, 0, 'nothing is sent before the sync');
  // Another page of the site, only to reach the browser's developer interface.
  const other = await context.newPage();
  await other.goto(`${demo.base}/`);
  const cdp = await context.newCDPSession(other);
  const registration = new Promise((resolve) =>
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const found = registrations.find((r) => r.scopeURL === `${demo.base}/report/` && !r.isDeleted);
      if (found) resolve(found.registrationId);
    }),
  );
  await cdp.send('ServiceWorker.enable');
  const registrationId = await registration;
  let taken = [];
  for (let i = 0; i < 40 && taken.length === 0; i++) {
    await cdp.send('ServiceWorker.dispatchSyncEvent', { origin: demo.base, registrationId, tag: 'dothi-report-outbox', lastChance: false });
    await new Promise((r) => setTimeout(r, 500));
    taken = await listedAgain();
  }
  assert.equal(taken.length, 1, 'the service worker sent the report once, with no page open');
  await other.close();
  // Opened again, the page shows it as sent and keeps its tracking link.
  const again = await context.newPage();
  await again.goto(`${demo.base}/report/`);
  const sentAgain = again.locator('#outbox .rp-sent');
  await sentAgain.waitFor({ timeout: 20_000 });
  assert.match(await sentAgain.innerText(), new RegExp(taken[0].service_request_id));
  const mineIds = await again.evaluate(() => JSON.parse(localStorage.getItem('dothi.reports.mine')).map((m) => m.id));
  assert.ok(mineIds.includes(taken[0].service_request_id), mineIds.join(' '));
  assert.equal(await again.locator('#outbox-count').count(), 0);
  await context.close();
});

test('staff work the inbox: tiles, a filter, an action, a bulk action, the reporter; an urgent report raises a notice', async () => {
  const { context, page } = await phonePage();
  await loginWithLink(page, demo);
  await page.locator('.tab[data-view="reports"]').click();
  await page.locator('#report-tiles').waitFor();
  // The tiles count what the API counts.
  const open = await demo.api('GET', '/reports/v1/requests?stage=received,accepted,assigned,in_progress&limit=1000');
  const tile = async (k) => Number(await page.locator(`[data-tile="${k}"] strong`).innerText());
  assert.equal(await tile('tileNew'), open.filter((r) => r.workflowStatus === 'received').length);
  assert.equal(await tile('tileOverdue'), open.filter((r) => r.overdue).length);
  assert.equal(await tile('tileUrgent'), open.filter((r) => r.urgent).length);
  // Overdue reports wear the late colour.
  await page.locator('[data-tile="tileOverdue"]').click();
  await page.waitForFunction(() => document.querySelector('input[name="overdue"]')?.checked);
  const rows = page.locator('#report-inbox tbody tr');
  assert.ok((await rows.count()) > 0);
  assert.equal(await page.locator('#report-inbox tbody td.rs-due:not(.due-late)').count(), 0);

  // Every stage: the demo's year is more than a page; the next page comes below the
  // first, none of its rows repeated, and the count says how many there are in all.
  await page.locator('input[name="overdue"]').uncheck();
  await page.locator('select[name="stage"]').selectOption('');
  // (The open reports of the step before may show a page and a button too: wait for the
  // list of every stage, which holds the whole demo year.)
  const total = Number(await page.evaluate(async () => (await fetch('/reports/v1/requests?limit=1')).headers.get('X-Total-Count')));
  assert.ok(total > 200, `the demo holds more than two pages: ${total}`);
  await page.waitForFunction((n) => document.querySelector('#report-count')?.textContent === `100 trên ${n} phản ánh`, total);
  assert.equal(await rows.count(), 100);
  // (Activated from the keyboard, as a keyboard user does: at the end of this long table
  // on the phone viewport, the pointer click's hit test reports the table's cells over
  // the button, though the page's own elementFromPoint finds the button there.)
  await page.locator('#report-more').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('#report-inbox tbody tr').length === 200);
  const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  assert.equal(new Set(ids).size, 200);
  assert.equal(await page.locator('#report-count').innerText(), `200 trên ${total} phản ánh`);
  const listed = await demo.api('GET', '/reports/v1/requests?limit=200');
  assert.deepEqual(
    ids,
    listed.map((r) => r.service_request_id),
    'two pages are the first 200 of one listing',
  );

  // One agency's inbox, received reports.
  const mine = await file({ service_code: 'duong-hu-hong', description: 'Ổ gà lớn giữa đường', first_name: 'Trần Văn Nam', phone: '0911 223 344' });
  const second = await file({ service_code: 'duong-hu-hong', description: 'Mặt đường sụt lún' });
  const third = await file({ service_code: 'duong-hu-hong', description: 'Nắp cống vỡ trên vỉa hè' });
  const agency = (await demo.api('GET', `/reports/v1/requests/${mine.service_request_id}`)).agency_responsible;
  await page.locator('select[name="agency"]').selectOption(agency);
  await page.locator('select[name="stage"]').selectOption('received');
  await page.locator('input[name="overdue"]').uncheck();
  await page.locator(`#report-inbox tr[data-id="${mine.service_request_id}"]`).waitFor();
  for (const cell of await page.locator('#report-inbox tbody tr td:nth-child(2)').allInnerTexts()) assert.ok(cell.length > 0);

  // The panel: map, timeline, the reporter's contact (the admin holds the right), accept.
  await page.locator(`#report-inbox tr[data-id="${mine.service_request_id}"] td:nth-child(3)`).click();
  await page.locator('#report-panel-map .leaflet-interactive').waitFor();
  await page.locator('#show-reporter').click();
  await page.locator('#panel-reporter', { hasText: '0911 223 344' }).waitFor();
  await page.locator('[data-action="accept"]').click();
  await page.locator('#action-form button[type="submit"]').click();
  await page.locator('#panel-stage[data-stage="accepted"]').waitFor();
  assert.equal((await demo.api('GET', `/reports/v1/requests/${mine.service_request_id}`)).workflowStatus, 'accepted');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'reports-inbox-390x844.png'), fullPage: true });
  // An extension of the deadline, with its reason.
  await page.locator('[data-action="extend"]').click();
  await page.locator('#action-form textarea[name="reason"]').fill('Chờ vật tư');
  await page.locator('#action-form button[type="submit"]').click();
  await page.locator('#panel-note', { hasText: 'Đã thực hiện' }).waitFor();
  assert.equal((await demo.api('GET', `/reports/v1/requests/${mine.service_request_id}`)).extensions.length, 1);

  // Bulk: the two others assigned at once.
  await page.locator('select[name="stage"]').selectOption('received');
  for (const r of [second, third]) await page.locator(`#report-inbox tr[data-id="${r.service_request_id}"] input[type="checkbox"]`).check();
  await page.locator('select[name="bulk-action"]').selectOption('assign');
  await page.locator('.rs-bulk input[name="officer"]').fill('Tổ duy tu số 2');
  await page.locator('.rs-bulk button[type="submit"]').click();
  await page.locator('#bulk-note', { hasText: '2 thành công, 0 không thực hiện được' }).waitFor();
  for (const r of [second, third]) {
    const now = await demo.api('GET', `/reports/v1/requests/${r.service_request_id}`);
    assert.equal(now.workflowStatus, 'assigned');
    assert.equal(now.assignedOfficer, 'Tổ duy tu số 2');
  }

  // An urgent report reaches the centre at once.
  const flood = await file({ service_code: 'lu-lut-cuu-ho', description: 'Nước lũ dâng cao, một hộ dân bị cô lập' });
  const notice = page.locator(`#urgent-reports [data-id="${flood.service_request_id}"]`);
  // The change stream brings it within seconds.
  await notice.waitFor({ timeout: 10_000 });
  assert.match(await notice.innerText(), /Phản ánh khẩn cấp mới/);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'reports-urgent-390x844.png') });
  await notice.locator('button.primary').click();
  await page.waitForFunction((id) => document.querySelector('#panel-code')?.textContent.includes(id), flood.service_request_id);
  assert.deepEqual(page.cspViolations, []);
  await context.close();
});

test("an operator sees a reporter's contact only once granted the right for the agency", async () => {
  const operator = { username: 'tiepnhan.pa', password: 'Cống-rãnh-Đông-Hà-2026' };
  await demo.api('POST', '/auth/v1/users', { ...operator, role: 'operator', tenants: [''] });
  const filed = await file({ service_code: 'rac-thai', 'attribute[loai_rac]': 'sinh_hoat', description: 'Rác đổ bên đường', phone: '0934 556 677' });
  const { context, page } = await phonePage();
  await page.goto(`${demo.base}/ioc/`);
  await page.fill('#login-form input[name="username"]', operator.username);
  await page.fill('#login-form input[name="password"]', operator.password);
  await page.locator('#login-form button[type="submit"]').click();
  await page.waitForSelector('body[data-ready="true"]');
  await page.locator('.tab[data-view="reports"]').click();
  await page.locator('#report-tiles').waitFor();
  await page.locator('select[name="stage"]').selectOption('received');
  await page.locator(`#report-inbox tr[data-id="${filed.service_request_id}"] td:nth-child(3)`).click();
  await page.locator('#show-reporter').click();
  await page.locator('#panel-reporter', { hasText: 'không có quyền' }).waitFor();
  assert.doesNotMatch(await page.locator('#report-panel').innerText(), /0934 556 677/);
  // The admin grants the right for the report's agency: the contact shows.
  const { agency_responsible: agency } = await demo.api('GET', `/reports/v1/requests/${filed.service_request_id}`);
  await demo.api('PUT', `/reports/v1/reporter-access/user:${operator.username}`, { agencies: [agency] });
  await page.locator(`#report-inbox tr[data-id="${filed.service_request_id}"] td:nth-child(3)`).click();
  await page.locator('#show-reporter').click();
  await page.locator('#panel-reporter', { hasText: '0934 556 677' }).waitFor();
  // Both reads are in the audit log, the refused one too.
  const { records } = await demo.api('GET', `/auth/v1/audit?actor=user:${operator.username}&action=read%20reporter%20contact`);
  assert.deepEqual(records.map((r) => r.outcome).sort(), ['ok', 'refused'], JSON.stringify(records));
  assert.deepEqual(page.cspViolations, []);
  await context.close();
});
