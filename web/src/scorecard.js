// The plan's scorecard in the operations centre: every KPI of the plan with its value
// against its targets, its status, its trend (the KPI's history) and its evidence one
// click away (the NGSI-LD queries that produced it, or the approved document); the
// eight task groups with their progress; the smart-city checklist per ward; the
// Decision 766 indicators per month. "In báo cáo" prints it as an A4 report (print
// CSS in scorecard.css); "Xuất XLSX" downloads the spreadsheet. An operator enters the
// value of an entered KPI with its evidence (a file uploaded first, or a link); an
// admin other than the submitter approves or rejects it (four eyes). Every value from
// the server goes into the page as text.

import { getJson, send, sendFile, session } from './auth.js';
import { $, el, fmtNumber, fmtTime, token } from './common.js';
import './scorecard.css';

export const SCORECARD_TEXT = {
  vi: {
    tab: 'Bảng điểm kế hoạch',
    title: 'Bảng điểm thực hiện Kế hoạch chuyển đổi số tỉnh Quảng Trị',
    printed: 'Báo cáo lập lúc',
    print: 'In báo cáo',
    xlsx: 'Xuất XLSX',
    kpis: 'Chỉ tiêu của kế hoạch',
    value: 'Giá trị',
    target: 'Mục tiêu',
    status: 'Tình trạng',
    trend: 'Xu hướng',
    evidence: 'Minh chứng',
    evidenceFile: 'Tệp minh chứng',
    owner: 'Cơ quan chủ trì',
    formula: 'Công thức',
    noValue: 'Chưa có số liệu',
    tasks: 'Tám nhóm nhiệm vụ',
    progress: 'Tiến độ',
    deadline: 'Thời hạn',
    maturity: 'Tiêu chí đô thị thông minh (tự đánh giá)',
    draft: 'Danh mục tiêu chí dự thảo, chờ thay bằng phụ lục Thông tư 03/2026/TT-BXD',
    level: 'Cấp độ đạt',
    passed: 'tiêu chí đạt',
    egov: 'Chỉ số phục vụ người dân, doanh nghiệp (Quyết định 766), toàn tỉnh theo tháng',
    month: 'Tháng',
    dossiers: 'Hồ sơ',
    onTime: '2.1 Đúng hạn',
    online: '3.3 Trực tuyến',
    payment: '3.6 Thanh toán TT',
    digitised: '4.2 Số hóa',
    synthetic: 'Dữ liệu hồ sơ minh họa (tổng hợp), không phải số liệu thật',
    rules: 'Đúng tiến độ: đạt hoặc vượt giá trị kỳ vọng; có nguy cơ: thiếu không quá 10% mục tiêu; chậm: thiếu hơn.',
    demoHistory: 'Các điểm quý trước của chỉ tiêu tính tự động là dữ liệu minh họa.',
    mode: { computed: 'tự động', confirmed: 'tự động, cán bộ xác nhận', entered: 'nhập, có phê duyệt' },
    states: { onTrack: 'Đúng tiến độ', atRisk: 'Có nguy cơ', offTrack: 'Chậm', noData: 'Chưa có số liệu', noTarget: 'Chưa có mục tiêu' },
    taskStates: { notStarted: 'Chưa bắt đầu', inProgress: 'Đang thực hiện', done: 'Hoàn thành', blocked: 'Vướng mắc' },
    failed: 'Không tải được bảng điểm',
    enter: 'Nhập giá trị',
    periodEnd: 'Cuối kỳ',
    evidenceLink: 'hoặc đường dẫn minh chứng',
    submit: 'Gửi phê duyệt',
    pending: 'Chờ phê duyệt',
    submittedBy: 'người nhập',
    approve: 'Phê duyệt',
    reject: 'Từ chối',
    otherAdmin: 'cần quản trị viên khác phê duyệt',
    needEvidence: 'Cần tệp minh chứng hoặc đường dẫn',
    badType: 'Tệp minh chứng phải là PDF, PNG hoặc JPEG',
    tooBig: 'Tệp minh chứng tối đa 10 MB',
  },
  en: {
    tab: 'Plan scorecard',
    title: "Scorecard of Quảng Trị's digital transformation plan",
    printed: 'Report made at',
    print: 'Print report',
    xlsx: 'Export XLSX',
    kpis: "The plan's KPIs",
    value: 'Value',
    target: 'Target',
    status: 'Status',
    trend: 'Trend',
    evidence: 'Evidence',
    evidenceFile: 'Evidence file',
    owner: 'Owner agency',
    formula: 'Formula',
    noValue: 'No data yet',
    tasks: 'The eight task groups',
    progress: 'Progress',
    deadline: 'Deadline',
    maturity: 'Smart-city criteria (self-assessment)',
    draft: 'Draft list of criteria, to be replaced by the annex of Circular 03/2026/TT-BXD',
    level: 'Level reached',
    passed: 'criteria passed',
    egov: 'Service to citizens and businesses (Decision 766), province by month',
    month: 'Month',
    dossiers: 'Dossiers',
    onTime: '2.1 On time',
    online: '3.3 Online',
    payment: '3.6 Paid online',
    digitised: '4.2 Digitised',
    synthetic: 'Synthetic sample dossiers, not real figures',
    rules: 'On track: at or beyond the expected value; at risk: short by at most 10% of the target; off track: further short.',
    demoHistory: 'Past quarters of computed KPIs are demo data.',
    mode: { computed: 'computed', confirmed: 'computed, confirmed by an officer', entered: 'entered, approved' },
    states: { onTrack: 'On track', atRisk: 'At risk', offTrack: 'Off track', noData: 'No data', noTarget: 'No target' },
    taskStates: { notStarted: 'Not started', inProgress: 'In progress', done: 'Done', blocked: 'Blocked' },
    failed: 'The scorecard could not be loaded',
    enter: 'Enter a value',
    periodEnd: 'Period end',
    evidenceLink: 'or a link to the evidence',
    submit: 'Send for approval',
    pending: 'Waiting for approval',
    submittedBy: 'entered by',
    approve: 'Approve',
    reject: 'Reject',
    otherAdmin: 'another admin approves it',
    needEvidence: 'An evidence file or a link is needed',
    badType: 'The evidence file must be a PDF, PNG or JPEG',
    tooBig: 'The evidence file is at most 10 MB',
  },
};

const sc = { lang: () => 'vi', data: null, loading: null };
const t = (key) => SCORECARD_TEXT[sc.lang()][key] ?? SCORECARD_TEXT.vi[key] ?? key;
const KPI_PREFIX = 'urn:ngsi-ld:KeyPerformanceIndicator:plan-';
// The server's limits for an evidence file, checked here first to spare the upload.
const EVIDENCE_MAX_BYTES = 10 * 1024 * 1024;
const EVIDENCE_TYPES = ['application/pdf', 'image/png', 'image/jpeg'];
const canEnter = () => ['operator', 'admin'].includes(session.me?.role);
/** Whether the caller acts for the KPI's owner agency (`mine`: GET /scorecard/v1/members/me). */
const actsFor = (mine, k) => Boolean(mine?.all || mine?.agencies?.includes(k.organization?.name));
const isAdmin = () => session.me?.role === 'admin';

export function initScorecard(getLang) {
  sc.lang = getLang;
}

/** A KPI's name in the page's language. */
export function kpiName(k, lang) {
  const n = k.name;
  if (n && typeof n === 'object') return (lang === 'en' && n.en) || n.vi || '';
  return n || k.slug || '';
}

/** A value with its unit: "98,7 %", "6 / 7", "0,55". */
export function kpiValueText(k, lang) {
  const v = k.kpiValue;
  if (typeof v !== 'number') return null;
  if (k.unitCode === 'P1') return `${fmtNumber(lang, v, 1)} %`;
  if (k.unitCode === 'C62' && typeof k.maximumValue === 'number') return `${fmtNumber(lang, v, 0)} / ${fmtNumber(lang, k.maximumValue, 0)}`;
  return fmtNumber(lang, v, 2);
}

export function targetText(k, lang) {
  const entries = Object.entries(k.target || {});
  if (!entries.length) return '–';
  return entries.map(([y, v]) => `${y}: ${k.unitCode === 'P1' ? `${fmtNumber(lang, v, 1)} %` : fmtNumber(lang, v, 2)}`).join(' · ');
}

/** A small line chart of a KPI's history (SVG, drawn from DOM nodes). */
export function sparkline(points, max) {
  const NS = 'http://www.w3.org/2000/svg';
  const w = 160;
  const h = 40;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('role', 'img');
  if (points.length < 1) return svg;
  const t0 = points[0][1];
  const t1 = points[points.length - 1][1];
  const top = Math.max(max || 0, ...points.map((p) => p[0])) || 1;
  const x = (tt) => (t1 === t0 ? w / 2 : 4 + ((tt - t0) / (t1 - t0)) * (w - 8));
  const y = (v) => h - 4 - (v / top) * (h - 8);
  const line = document.createElementNS(NS, 'polyline');
  line.setAttribute('points', points.map((p) => `${x(p[1]).toFixed(1)},${y(p[0]).toFixed(1)}`).join(' '));
  svg.append(line);
  const last = points[points.length - 1];
  const dot = document.createElementNS(NS, 'circle');
  dot.setAttribute('cx', x(last[1]).toFixed(1));
  dot.setAttribute('cy', y(last[0]).toFixed(1));
  dot.setAttribute('r', '2.5');
  svg.append(dot);
  return svg;
}

/** A KPI's history: [value, time] points, and whether some are demo data. */
async function history(k) {
  const id = encodeURIComponent(`${KPI_PREFIX}${k.slug}`);
  try {
    const h = await getJson(`/ngsi-ld/v1/temporal/entities/${id}?attrs=kpiValue&lastN=20`);
    const raw = Array.isArray(h.kpiValue) ? h.kpiValue : h.kpiValue ? [h.kpiValue] : [];
    const points = raw
      .map((i) => [Number(i.value), Date.parse(i.observedAt)])
      .filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]))
      .sort((a, b) => a[1] - b[1]);
    return { points, demo: raw.some((i) => i.source?.value === 'demo') };
  } catch (_e) {
    return { points: [], demo: false };
  }
}

async function load() {
  const [kpis, tasks, maturity, egov, submissions, mine] = await Promise.all([
    getJson('/scorecard/v1/kpis'),
    getJson('/scorecard/v1/tasks'),
    getJson('/scorecard/v1/maturity'),
    getJson('/scorecard/v1/egov'),
    getJson('/scorecard/v1/submissions'),
    canEnter() ? getJson('/scorecard/v1/members/me') : null,
  ]);
  const series = await Promise.all(kpis.kpis.map(history));
  const pending = submissions.submissions.filter((s) => s.decision === 'pending');
  return { kpis: kpis.kpis, series, pending, tasks: tasks.tasks, maturity, egov, mine, at: new Date().toISOString() };
}

/** Opens the scorecard view (loaded again). */
export async function showScorecard() {
  const body = $('#scorecard-body');
  if (!body) return;
  try {
    sc.loading = load();
    sc.data = await sc.loading;
    render();
  } catch (e) {
    body.replaceChildren(el('p', { class: 'sc-error', role: 'alert' }, `${t('failed')}: ${e.message}`));
  }
}

export function translateScorecard() {
  const tab = $('.tab[data-view="scorecard"]');
  if (tab) tab.textContent = t('tab');
  if (sc.data && document.querySelector('#view-scorecard.active')) render();
}

function statusBadge(status) {
  return el('span', { class: `sc-status st-${token(status)}` }, t('states')[status] || status);
}

/** The uploaded file and the link of an entered value, as list items. */
function documentItems(file, url) {
  const items = [];
  if (file && typeof file.href === 'string' && file.href.startsWith('/scorecard/v1/evidence/')) {
    items.push(el('li', {}, el('a', { href: file.href }, file.fileName || t('evidenceFile')), ` (${file.mediaType || ''})`));
  }
  if (typeof url === 'string' && /^https?:\/\//.test(url)) {
    items.push(el('li', {}, el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, url)));
  }
  return items;
}

function evidenceOf(k) {
  const ev = k.evidence || {};
  const items = [];
  for (const input of ev.inputs || []) {
    if (typeof input.href !== 'string' || !input.href.startsWith('/ngsi-ld/v1/')) continue;
    // A count read from the answer by a rule says which rule.
    const rule = typeof input.rule === 'string' ? `: ${input.rule}` : '';
    items.push(el('li', {}, el('a', { href: input.href, target: '_blank', rel: 'noopener' }, input.name || input.query), ` (${input.count})${rule}`));
  }
  items.push(...documentItems(ev.evidenceFile, ev.url));
  return el(
    'details',
    { class: 'sc-evidence' },
    el('summary', {}, t('evidence')),
    el('p', {}, `${t('formula')}: ${ev.formula || k.calculationFormula || ''}`),
    items.length ? el('ul', {}, items) : null,
    ev.computedAt ? el('p', { class: 'muted' }, fmtTime(sc.lang(), ev.computedAt)) : null,
  );
}

/** Why an evidence file would be refused by the server, or null. */
export function evidenceFileProblem(file) {
  const byName = /\.(pdf|png|jpe?g)$/i.test(file.name);
  if (!EVIDENCE_TYPES.includes(file.type) && !(file.type === '' && byName)) return t('badType');
  if (file.size > EVIDENCE_MAX_BYTES) return t('tooBig');
  return null;
}

/** Uploads the file (if any), then enters the value with its evidence. */
async function enterValue(k, form, problem) {
  problem.textContent = '';
  const file = form.elements.file.files[0];
  const url = form.elements.url.value.trim();
  if (!file && !url) {
    problem.textContent = t('needEvidence');
    return;
  }
  const refused = file && evidenceFileProblem(file);
  if (refused) {
    problem.textContent = refused;
    return;
  }
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    const body = { value: Number(form.elements.value.value), periodEnd: form.elements.periodEnd.value };
    if (url) body.evidenceUrl = url;
    if (file) {
      const name = file.name ? `?name=${encodeURIComponent(file.name.slice(0, 200))}` : '';
      const described = await sendFile(`/scorecard/v1/evidence${name}`, file);
      // A submission names the file by its key, the last part of its link.
      body.evidenceFile = String(described.href).split('/').pop();
    }
    await send('POST', `/scorecard/v1/kpis/${encodeURIComponent(k.slug)}/submissions`, body);
    await showScorecard();
  } catch (e) {
    problem.textContent = e.message;
  } finally {
    button.disabled = false;
  }
}

function entryForm(k) {
  const problem = el('p', { class: 'sc-problem', role: 'alert' });
  const form = el(
    'form',
    { class: 'sc-entry' },
    el('label', {}, `${t('value')} `, el('input', { name: 'value', type: 'number', step: 'any', required: true })),
    el('label', {}, `${t('periodEnd')} `, el('input', { name: 'periodEnd', type: 'date', required: true, value: `${new Date().getFullYear() - 1}-12-31` })),
    el('label', {}, `${t('evidenceFile')} `, el('input', { name: 'file', type: 'file', accept: '.pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg' })),
    el('label', {}, `${t('evidenceLink')} `, el('input', { name: 'url', type: 'url', placeholder: 'https://' })),
    el('button', { type: 'submit' }, t('submit')),
    problem,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    enterValue(k, form, problem);
  });
  return el('details', { class: 'sc-enter no-print' }, el('summary', {}, t('enter')), form);
}

async function decide(s, verdict, problem) {
  problem.textContent = '';
  try {
    await send('POST', `/scorecard/v1/submissions/${encodeURIComponent(s.id)}/${verdict}`);
    await showScorecard();
  } catch (e) {
    problem.textContent = e.message;
  }
}

/** A value waiting for approval, with its evidence; an admin other than the submitter decides. */
function pendingValue(k, s) {
  const lang = sc.lang();
  const problem = el('p', { class: 'sc-problem', role: 'alert' });
  const mine = s.submittedBy === session.me?.actor;
  const actions = !isAdmin()
    ? null
    : mine
      ? el('p', { class: 'muted' }, t('otherAdmin'))
      : el(
          'div',
          { class: 'sc-decide no-print' },
          el('button', { type: 'button', class: 'primary', onclick: () => decide(s, 'approve', problem) }, t('approve')),
          el('button', { type: 'button', onclick: () => decide(s, 'reject', problem) }, t('reject')),
        );
  return el(
    'div',
    { class: 'sc-pending', 'data-submission': s.id },
    el('strong', {}, `${t('pending')}: `),
    el('span', { class: 'sc-pending-value' }, kpiValueText({ ...k, kpiValue: s.value }, lang) ?? ''),
    el('div', { class: 'muted' }, `${t('periodEnd')} ${s.periodEnd || ''} · ${t('submittedBy')} ${s.submittedBy || ''}`),
    el('ul', {}, documentItems(s.evidenceFile, s.evidenceUrl)),
    actions,
    problem,
  );
}

function kpiRow(k, points, pending, mine) {
  const lang = sc.lang();
  const value = kpiValueText(k, lang);
  const entered = k.mode === 'entered';
  return el(
    'tr',
    { 'data-kpi': k.slug },
    el(
      'td',
      {},
      el('strong', {}, kpiName(k, lang)),
      el('div', { class: 'muted' }, `${k.planReference || ''} · ${t('mode')[k.mode] || k.mode || ''} · ${k.organization?.name || ''}`),
    ),
    el(
      'td',
      { class: 'num' },
      value ?? el('span', { class: 'muted' }, t('noValue')),
      pending.map((s) => pendingValue(k, s)),
      entered && canEnter() && actsFor(mine, k) ? entryForm(k) : null,
    ),
    el('td', {}, targetText(k, lang)),
    el('td', {}, statusBadge(k.status)),
    el('td', {}, sparkline(points, k.maximumValue)),
    el('td', {}, evidenceOf(k)),
  );
}

function taskRow(task) {
  const lang = sc.lang();
  const name = task.name && typeof task.name === 'object' ? (lang === 'en' && task.name.en) || task.name.vi : task.name;
  const bar = el('div', { class: 'sc-bar' }, el('i', { style: `width:${Math.max(0, Math.min(100, Number(task.progress) || 0))}%` }));
  const notes = task.progressNotes || [];
  const last = notes[notes.length - 1];
  return el(
    'tr',
    {},
    el('td', {}, String(task.number)),
    el('td', {}, name, last ? el('div', { class: 'muted' }, last.text) : null),
    el('td', {}, task.owner || ''),
    el('td', {}, task.deadline || ''),
    el('td', {}, t('taskStates')[task.taskStatus] || task.taskStatus || ''),
    el('td', {}, bar, ` ${Number(task.progress) || 0} %`),
  );
}

function pct(lang, v) {
  return typeof v === 'number' ? `${fmtNumber(lang, v * 100, 1)} %` : '–';
}

function render() {
  const d = sc.data;
  const lang = sc.lang();
  const body = $('#scorecard-body');
  const head = el(
    'div',
    { class: 'sc-head' },
    el('div', {}, el('h2', {}, t('title')), el('p', { class: 'muted' }, `${t('printed')} ${fmtTime(lang, d.at)}`)),
    el(
      'div',
      { class: 'sc-actions no-print' },
      el('button', { type: 'button', class: 'primary', id: 'sc-print', onclick: () => window.print() }, t('print')),
      el('a', { class: 'button', href: '/scorecard/v1/export.xlsx', download: 'bang-diem-ke-hoach.xlsx' }, t('xlsx')),
    ),
  );
  const kpiTable = el(
    'table',
    { class: 'sc-table', id: 'sc-kpis' },
    el('thead', {}, el('tr', {}, ...['kpis', 'value', 'target', 'status', 'trend', 'evidence'].map((k) => el('th', {}, t(k))))),
    el(
      'tbody',
      {},
      d.kpis.map((k, i) =>
        kpiRow(
          k,
          d.series[i]?.points || [],
          d.pending.filter((s) => s.refKpi === `${KPI_PREFIX}${k.slug}`),
          d.mine,
        ),
      ),
    ),
  );
  const taskTable = el(
    'table',
    { class: 'sc-table', id: 'sc-tasks' },
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        el('th', {}, '#'),
        el('th', {}, t('tasks')),
        el('th', {}, t('owner')),
        el('th', {}, t('deadline')),
        el('th', {}, t('status')),
        el('th', {}, t('progress')),
      ),
    ),
    el('tbody', {}, d.tasks.map(taskRow)),
  );
  const wards = (d.maturity.wards || []).map((w) =>
    el('li', {}, el('strong', {}, w.name), ` — ${t('level')}: ${w.levelReached} · ${w.passed}/${(w.criteria || []).length} ${t('passed')}`),
  );
  const months = (d.egov.province || []).slice(-12);
  const egovTable = el(
    'table',
    { class: 'sc-table', id: 'sc-egov' },
    el('thead', {}, el('tr', {}, ...['month', 'dossiers', 'onTime', 'online', 'payment', 'digitised'].map((k) => el('th', {}, t(k))))),
    el(
      'tbody',
      {},
      months.map((m) =>
        el(
          'tr',
          {},
          el('td', {}, m.month),
          el('td', { class: 'num' }, fmtNumber(lang, m.dossiers, 0)),
          el('td', { class: 'num' }, pct(lang, m.rates['2.1'])),
          el('td', { class: 'num' }, pct(lang, m.rates['3.3'])),
          el('td', { class: 'num' }, pct(lang, m.rates['3.6'])),
          el('td', { class: 'num' }, pct(lang, m.rates['4.2'])),
        ),
      ),
    ),
  );
  body.replaceChildren(
    head,
    el(
      'section',
      { class: 'sc-section' },
      el('h3', {}, t('kpis')),
      kpiTable,
      el('p', { class: 'muted' }, t('rules'), d.series.some((x) => x.demo) ? ` ${t('demoHistory')}` : ''),
    ),
    el('section', { class: 'sc-section' }, el('h3', {}, t('tasks')), taskTable),
    el(
      'section',
      { class: 'sc-section' },
      el('h3', {}, t('maturity')),
      d.maturity.draft ? el('p', { class: 'sc-draft' }, t('draft')) : null,
      el('ul', { id: 'sc-wards' }, wards),
    ),
    el('section', { class: 'sc-section' }, el('h3', {}, t('egov')), d.egov.sample ? el('p', { class: 'sc-draft' }, t('synthetic')) : null, egovTable),
  );
}
