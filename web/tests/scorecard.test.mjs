// The plan's scorecard in headless Chromium against a real `dothi demo`: its summary
// on the public page, the operations centre's scorecard view with its trends and
// evidence, and its printed A4 report (print CSS, printed to PDF); a value entered with
// an uploaded file by an operator and approved by an admin.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { loginWithLink, openPage, SCREENSHOTS, watchCsp, withDemoAndBrowser } from './server.mjs';

let demo;
let browser;
let page;

withDemoAndBrowser(async (started) => {
  ({ demo, browser } = started);
  page = await openPage(browser, { viewport: { width: 1440, height: 900 } });
});

test('the public page shows the plan KPIs against their targets, anonymously', async () => {
  const anon = await browser.newContext();
  const p = await anon.newPage();
  await watchCsp(p);
  await p.goto(`${demo.base}/`);
  await p.waitForSelector('#plan-scorecard .pub-kpi', { timeout: 60_000 });
  const cards = await p.$$eval('#plan-scorecard .pub-kpi', (els) =>
    els.map((e) => ({
      slug: e.dataset.kpi,
      value: e.querySelector('.pub-kpi-value')?.textContent || '',
    })),
  );
  // The plan's eight, and the six read from the other services.
  assert.equal(cards.length, 14);
  const broadband = cards.find((c) => c.slug === 'broadband-communes');
  assert.match(broadband.value, /100/);
  assert.deepEqual(p.cspViolations, []);
  await p.screenshot({ path: path.join(SCREENSHOTS, 'scorecard-public.png'), fullPage: true });
  await anon.close();
});

test('the scorecard view shows each KPI with its status, trend and evidence', async () => {
  await loginWithLink(page, demo);
  await page.click('.tab[data-view="scorecard"]');
  await page.waitForSelector('#sc-kpis tbody tr', { timeout: 30_000 });
  const rows = await page.$$eval('#sc-kpis tbody tr', (trs) =>
    trs.map((tr) => ({
      slug: tr.dataset.kpi,
      status: tr.querySelector('.sc-status')?.className || '',
      points: (tr.querySelector('.spark polyline')?.getAttribute('points') || '').split(' ').filter(Boolean).length,
      links: [...tr.querySelectorAll('.sc-evidence a')].map((a) => a.getAttribute('href')),
    })),
  );
  assert.equal(rows.length, 14);
  // KPIs read from the other services link to their queries: reports, and the
  // stations' daily aggregation in the temporal API.
  const onTime = rows.find((r) => r.slug === 'reports-on-time');
  assert.ok(
    onTime.links.some((h) => h.startsWith('/ngsi-ld/v1/entities?type=Open311_ServiceRequest')),
    onTime.links.join(' '),
  );
  const air = rows.find((r) => r.slug === 'good-air-days');
  assert.ok(
    air.links.some((h) => h.startsWith('/ngsi-ld/v1/temporal/entities?type=AirQualityObserved')),
    air.links.join(' '),
  );
  const broadband = rows.find((r) => r.slug === 'broadband-communes');
  assert.match(broadband.status, /st-onTrack/);
  // Four demo quarters and today's value.
  assert.ok(broadband.points >= 5, `trend points: ${broadband.points}`);
  assert.ok(
    broadband.links.some((h) => h.startsWith('/ngsi-ld/v1/entities?type=KeyPerformanceIndicator')),
    broadband.links.join(' '),
  );
  // One click away: the evidence query answers with the entities it counted.
  const answer = await page.evaluate(async (href) => {
    const r = await fetch(`${href}&count=true&limit=0`, { headers: { Accept: 'application/json' } });
    return { status: r.status, count: r.headers.get('NGSILD-Results-Count') };
  }, broadband.links[0]);
  assert.deepEqual(answer, { status: 200, count: '78' });
  assert.equal(await page.$$eval('#sc-tasks tbody tr', (t) => t.length), 8);
  assert.equal(await page.$$eval('#sc-wards li', (t) => t.length), 3);
  assert.ok((await page.$$eval('#sc-egov tbody tr', (t) => t.length)) >= 1);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'scorecard-ioc.png'), fullPage: true });
});

test('the report prints on A4 with only the scorecard', async () => {
  await page.emulateMedia({ media: 'print' });
  const hidden = await page.evaluate(() => ({
    header: getComputedStyle(document.querySelector('header.top')).display,
    actions: getComputedStyle(document.querySelector('.sc-actions')).display,
    view: getComputedStyle(document.querySelector('#view-scorecard')).display,
  }));
  assert.deepEqual(hidden, { header: 'none', actions: 'none', view: 'block' });
  const pdf = await page.pdf({ format: 'A4', printBackground: true, preferCSSPageSize: true });
  assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');
  assert.ok(pdf.length > 20_000, `a PDF of ${pdf.length} bytes`);
  await writeFile(path.join(SCREENSHOTS, 'scorecard-report.pdf'), pdf);
  await page.emulateMedia({ media: 'screen' });
});

test('an operator enters a value with an uploaded PDF, and an admin approves it', async () => {
  const operator = { username: 'thongke.qt', password: 'Số-liệu-kinh-tế-số-2026' };
  await demo.api('POST', '/auth/v1/users', { ...operator, role: 'operator', tenants: [''] });
  // The digital economy share is the statistics office's to enter.
  await demo.api('PUT', `/scorecard/v1/members/user:${operator.username}`, {
    agencies: ['Thống kê tỉnh Quảng Trị'],
  });
  // A real PDF, printed by the browser: the statistics bulletin.
  const bulletinContext = await browser.newContext();
  const bulletinPage = await bulletinContext.newPage();
  await bulletinPage.setContent('<h1>Bản tin thống kê 2025</h1><p>Kinh tế số: 21,5 % GRDP</p>');
  const pdf = await bulletinPage.pdf({ format: 'A4' });
  await bulletinContext.close();

  const opContext = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const op = await opContext.newPage();
  await watchCsp(op);
  await op.goto(`${demo.base}/ioc/`);
  await op.fill('#login-form input[name="username"]', operator.username);
  await op.fill('#login-form input[name="password"]', operator.password);
  await op.locator('#login-form button[type="submit"]').click();
  await op.waitForSelector('body[data-ready="true"]');
  await op.click('.tab[data-view="scorecard"]');
  const row = op.locator('#sc-kpis tr[data-kpi="digital-economy-grdp"]');
  // Computed KPIs take no entered value: no form there.
  await row.waitFor({ timeout: 30_000 });
  assert.equal(await op.locator('#sc-kpis tr[data-kpi="broadband-communes"] .sc-entry').count(), 0);
  // Entered KPIs of agencies the operator does not act for offer no form either: the
  // DTI is the Department of Science and Technology's, the 766 score the province
  // office's.
  for (const other of ['dti', 'egov-766']) {
    assert.equal(await op.locator(`#sc-kpis tr[data-kpi="${other}"] .sc-enter`).count(), 0, other);
  }
  await row.locator('.sc-enter summary').click();
  const form = row.locator('.sc-entry');
  const problem = form.locator('.sc-problem');

  // Checked here before any upload: a GIF, then a file over 10 MB.
  await form.locator('input[name="value"]').fill('21.5');
  await form.locator('input[name="file"]').setInputFiles({ name: 'anh.gif', mimeType: 'image/gif', buffer: Buffer.from('GIF89a') });
  await form.locator('button[type="submit"]').click();
  await problem.filter({ hasText: 'PDF, PNG hoặc JPEG' }).waitFor();
  const big = Buffer.concat([pdf, Buffer.alloc(10 * 1024 * 1024)]);
  await form.locator('input[name="file"]').setInputFiles({ name: 'lon.pdf', mimeType: 'application/pdf', buffer: big });
  await form.locator('button[type="submit"]').click();
  await problem.filter({ hasText: 'tối đa 10 MB' }).waitFor();
  // The server's refusal (a share above 100 %) shows its ProblemDetails detail.
  await form.locator('input[name="value"]').fill('150');
  await form.locator('input[name="file"]').setInputFiles({ name: 'ban-tin-2025.pdf', mimeType: 'application/pdf', buffer: pdf });
  await form.locator('button[type="submit"]').click();
  await problem.filter({ hasText: 'value must be at most 100' }).waitFor();

  await form.locator('input[name="value"]').fill('21.5');
  await form.locator('button[type="submit"]').click();
  const pending = op.locator('#sc-kpis tr[data-kpi="digital-economy-grdp"] .sc-pending');
  await pending.waitFor();
  assert.match(await pending.locator('.sc-pending-value').textContent(), /^21,5 %$/);
  const href = await pending.locator('a[href^="/scorecard/v1/evidence/"]').getAttribute('href');
  assert.equal(await pending.locator('a[href^="/scorecard/v1/evidence/"]').textContent(), 'ban-tin-2025.pdf');
  // An operator cannot decide.
  assert.equal(await pending.locator('button').count(), 0);
  // The link downloads the bytes uploaded.
  const download = await op.evaluate(async (h) => {
    const r = await fetch(h);
    return { status: r.status, type: r.headers.get('Content-Type'), bytes: Array.from(new Uint8Array(await r.arrayBuffer())) };
  }, href);
  assert.equal(download.status, 200);
  assert.equal(download.type, 'application/pdf');
  assert.ok(Buffer.from(download.bytes).equals(pdf), 'the downloaded file is the one uploaded');
  assert.deepEqual(op.cspViolations, []);
  await opContext.close();

  // The admin (signed in by the login link) approves it: the value becomes the KPI's.
  await page.click('.tab[data-view="map"]');
  await page.click('.tab[data-view="scorecard"]');
  const adminRow = page.locator('#sc-kpis tr[data-kpi="digital-economy-grdp"]');
  await adminRow.locator('.sc-pending button.primary').click();
  await adminRow.locator('.sc-pending').waitFor({ state: 'detached' });
  assert.match(await adminRow.locator('td.num').textContent(), /^21,5 %/);
  const links = await adminRow.locator('.sc-evidence a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.ok(links.includes(href), links.join(' '));
  // Both steps are in the audit log, each under its actor.
  const { submissions } = await demo.api('GET', '/scorecard/v1/submissions');
  const decided = submissions.find((s) => s.evidenceFile?.href === href);
  assert.equal(decided.decision, 'approved');
  assert.equal(decided.submittedBy, `user:${operator.username}`);
  const entered = await demo.api('GET', `/auth/v1/audit?actor=user:${operator.username}`);
  assert.ok(
    entered.records.some((r) => JSON.stringify(r).includes(decided.id)),
    'the submission is audited under the operator',
  );
  const admin = await page.evaluate(async () => (await (await fetch('/auth/v1/me')).json()).actor);
  assert.notEqual(admin, decided.submittedBy);
  const approved = await demo.api('GET', `/auth/v1/audit?actor=${encodeURIComponent(admin)}`);
  assert.ok(
    approved.records.some((r) => JSON.stringify(r).includes(decided.id)),
    'the approval is audited under the admin',
  );
  await page.screenshot({ path: path.join(SCREENSHOTS, 'scorecard-approved.png'), fullPage: true });
});

test('the pages ran under their Content-Security-Policy without a refusal', () => {
  assert.deepEqual(page.cspViolations, []);
});
