// The plan's scorecard on the public page: each KPI's value against its target and
// its status, read anonymously from /scorecard/v1/public (which carries no personal
// data), with the formula and the public queries behind computed values.
import { el, token } from './common.js';
import { kpiName, kpiValueText, SCORECARD_TEXT, targetText } from './scorecard.js';

const state = { kpis: null, failed: false };

const TITLE = {
  vi: 'Thực hiện Kế hoạch chuyển đổi số',
  en: 'Progress of the digital transformation plan',
};
const LEAD = {
  vi: 'Giá trị hiện tại so với mục tiêu năm 2025 và 2030; chỉ tiêu tính tự động kèm công thức.',
  en: 'Current values against the 2025 and 2030 targets; computed KPIs come with their formula.',
};

export async function loadPublicScorecard() {
  try {
    const r = await fetch('/scorecard/v1/public', { headers: { Accept: 'application/json' } });
    if (!r.ok) throw new Error(String(r.status));
    state.kpis = (await r.json()).kpis || [];
  } catch (_e) {
    state.failed = true;
  }
}

/** Draws the section in `lang` into `container` (nothing when the service is absent). */
export function renderPublicScorecard(container, lang) {
  if (!container) return;
  container.hidden = !state.kpis;
  if (!state.kpis) return;
  const words = SCORECARD_TEXT[lang] || SCORECARD_TEXT.vi;
  const cards = state.kpis.map((k) =>
    el(
      'article',
      { class: `pub-kpi st-${token(k.status)}`, 'data-kpi': k.slug },
      el('h3', {}, kpiName(k, lang)),
      el('p', { class: 'pub-kpi-value' }, kpiValueText(k, lang) ?? words.noValue),
      el('p', { class: 'muted' }, `${words.target}: ${targetText(k, lang)}`),
      el('p', { class: 'pub-kpi-status' }, words.states[k.status] || k.status),
      k.mode === 'computed' && k.calculationFormula ? el('p', { class: 'muted' }, k.calculationFormula) : null,
    ),
  );
  container.replaceChildren(el('h2', {}, TITLE[lang] || TITLE.vi), el('p', { class: 'muted' }, LEAD[lang] || LEAD.vi), el('div', { class: 'pub-kpis' }, cards));
}
