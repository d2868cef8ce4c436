// Verifications per second by outcome, drawn by hand in SVG: a polyline per code over the
// last `points` samples of keygate_verifications_total from /metrics. Small enough that a
// charting library would be most of the console's weight.
import { h, svg, fill } from './dom.js';

const COLORS = {
  VALID: '#1a7f37', NOT_FOUND: '#b3261e', REVOKED: '#8250df', EXPIRED: '#9a6700',
  RATE_LIMITED: '#0b57d0', MALFORMED: '#57606a', INSUFFICIENT_SCOPE: '#bc4c00',
  ORIGIN_NOT_ALLOWED: '#1b7c83', ORGANIZATION_SUSPENDED: '#cf222e', PROJECT_ARCHIVED: '#6e7781',
  CERTIFICATE_REQUIRED: '#953800', CERTIFICATE_EXPIRED: '#4d2d00', NODE_STALE: '#24292f',
};
const W = 1000, H = 240, PAD = 30;

export class RateChart {
  constructor(points = 60) {
    this.points = points;
    this.series = new Map(); // code -> [rate per second]
    this.last = null;        // {t, counts}
    this.el = h('div', { class: 'chart' });
  }

  // `counts`: code -> total, as read at time `t` (ms).
  add(t, counts) {
    if (this.last) {
      const dt = (t - this.last.t) / 1000;
      for (const [code, n] of counts) {
        const prev = this.last.counts.get(code) ?? n;
        const rate = dt > 0 ? Math.max(0, (n - prev) / dt) : 0;
        if (!this.series.has(code)) this.series.set(code, []);
        const s = this.series.get(code);
        s.push(rate);
        if (s.length > this.points) s.shift();
      }
    }
    this.last = { t, counts };
    this.draw();
  }

  draw() {
    const shown = [...this.series].filter(([, s]) => s.some((v) => v > 0));
    const max = Math.max(1, ...shown.flatMap(([, s]) => s));
    const x = (i) => PAD + (i * (W - PAD - 10)) / (this.points - 1);
    const y = (v) => H - PAD + 10 - (v / max) * (H - PAD - 10);
    const lines = shown.map(([code, s]) => {
      const offset = this.points - s.length;
      return svg('polyline', {
        fill: 'none', stroke: COLORS[code] || '#000', 'stroke-width': 2, 'data-code': code,
        points: s.map((v, i) => `${x(i + offset).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
      });
    });
    const samples = Math.max(0, ...[...this.series.values()].map((s) => s.length));
    const graph = svg('svg', {
      viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-samples': samples,
      'aria-label': `Verifications per second over the last ${samples} samples, peak ${max.toFixed(1)}`,
    },
    svg('line', { x1: PAD, y1: H - PAD + 10, x2: W - 10, y2: H - PAD + 10, stroke: '#d0d7de' }),
    svg('text', { x: 2, y: 20, 'font-size': 11, fill: '#57606a' }, `${max.toFixed(0)}/s`),
    svg('text', { x: 2, y: H - PAD + 10, 'font-size': 11, fill: '#57606a' }, '0'),
    ...lines);
    const legend = h('div', { class: 'legend' }, shown.length ? [] : 'No verifications yet.', shown.map(([code, s]) => {
      const item = h('span', { dataset: { code } }, `${code} ${(s[s.length - 1] ?? 0).toFixed(1)}/s`);
      item.style.setProperty('--c', COLORS[code] || '#000'); // CSSOM: allowed by the CSP
      return item;
    }));
    fill(this.el, graph, legend);
  }
}

// Prometheus text to [{name, labels: {..}, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}
