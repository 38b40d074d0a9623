// The plan's scorecard in headless Chromium against a real `dothi demo`: its summary
// on the public page, the operations centre's scorecard view with its trends and
// evidence, and its printed A4 report (print CSS, printed to PDF).

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser, loginWithLink, SCREENSHOTS, startDemo, watchCsp } from './server.mjs';

let demo;
let browser;
let context;
let page;

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await watchCsp(page);
});

after(async () => {
  await browser?.close();
  await demo?.stop();
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

test('the pages ran under their Content-Security-Policy without a refusal', () => {
  assert.deepEqual(page.cspViolations, []);
});
