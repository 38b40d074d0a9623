// How the panel shows a value: numbers with their unit, times in Asia/Ho_Chi_Minh
// (never raw ISO strings), a gauge's alarm level as "Báo động I/II/III", addresses
// as one line. Pure functions of the attribute and the language.

import { fmtNumber, fmtTime } from '../common.js';
import { STATE_NAMES, TEXT } from '../i18n.js';

/** UN/CEFACT common codes the hub's data uses, as people write them. */
const UNITS = {
  MTR: 'm',
  CEL: '°C',
  KMH: 'km/h',
  GQ: 'µg/m³',
  MMT: 'mm',
  MTS: 'm/s',
  KWH: 'kWh',
  KWT: 'kW',
  P1: '%',
  MTQ: 'm³',
  KMK: 'km²',
  MTK: 'm²',
  DD: '°',
  A97: 'hPa',
  E32: 'm³/h',
  HTZ: 'Hz',
  AMP: 'A',
  VLT: 'V',
  KEL: 'K',
  MQH: 'm³/h',
  LTR: 'l',
  KGM: 'kg',
  TNE: 't',
  HUR: 'h',
  MIN: 'min',
  SEC: 's',
  '2N': 'dB',
};

/** Units of attributes that carry no unitCode, by name: ratios are shown as percent. */
const RATIOS = new Set(['relativeHumidity', 'occupancy', 'bedOccupancy', 'illuminanceLevel']);
const NAMED_UNITS = {
  vi: { intensity: 'xe', airQualityIndex: 'VN_AQI' },
  en: { intensity: 'vehicles', airQualityIndex: 'VN_AQI' },
};

export function unitName(code) {
  return UNITS[code] || code;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A date-time, a date or an interval of two date-times, formatted; null otherwise. */
export function timeText(lang, v) {
  if (v && typeof v === 'object' && (v['@type'] === 'DateTime' || v['@type'] === 'Date') && typeof v['@value'] === 'string') {
    return timeText(lang, v['@value']);
  }
  if (typeof v !== 'string') return null;
  if (DATE_TIME.test(v) && !Number.isNaN(Date.parse(v))) return fmtTime(lang, v);
  const d = DATE.exec(v);
  if (d) return `${d[3]}/${d[2]}/${d[1]}`;
  const [from, to, more] = v.split('/');
  if (to !== undefined && more === undefined && DATE_TIME.test(from) && DATE_TIME.test(to)) {
    return `${fmtTime(lang, from)} – ${fmtTime(lang, to)}`;
  }
  return null;
}

/** A gauge's `alarmLevelReached` (0–3) in words. */
export function alarmText(lang, level) {
  if (level >= 1 && level <= 3) return STATE_NAMES[lang][`alarm${Math.floor(level)}`];
  return TEXT[lang].belowAlarm;
}

/** A number with its unit: from the attribute's unitCode, else known by its name. */
export function numberText(lang, name, attr, v) {
  if (name === 'alarmLevelReached') return alarmText(lang, v);
  if (attr.unitCode) return `${fmtNumber(lang, v, 3)} ${unitName(attr.unitCode)}`;
  if (RATIOS.has(name) && v >= 0 && v <= 2) return `${fmtNumber(lang, v * 100, 1)} %`;
  const unit = NAMED_UNITS[lang][name];
  return unit ? `${fmtNumber(lang, v, 3)} ${unit}` : fmtNumber(lang, v, 3);
}

/** One line for an attribute's value in the panel. */
export function valueText(lang, name, attr) {
  const v = attr.value ?? attr.object ?? attr.languageMap ?? attr.vocab;
  if (attr.type === 'GeoProperty') {
    return v?.type === 'Point' ? v.coordinates.map((x) => fmtNumber(lang, x, 5)).join(', ') : v?.type || '';
  }
  if (attr.type === 'LanguageProperty' && v && typeof v === 'object') return v[lang] || v.vi || Object.values(v)[0];
  if (typeof v === 'number') return numberText(lang, name, attr, v);
  if (typeof v === 'boolean') return v ? '✓' : '✗';
  const time = timeText(lang, v);
  if (time !== null) return time;
  if (v && typeof v === 'object') {
    if (v.addressLocality || v.streetAddress) return [v.streetAddress, v.addressLocality, v.addressRegion].filter(Boolean).join(', ');
    const text = JSON.stringify(v);
    return text.length > 120 ? `${text.slice(0, 117)}…` : text;
  }
  return String(v ?? '');
}
