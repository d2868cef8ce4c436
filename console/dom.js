// The console's only way to build the page: elements from tags, attributes and children,
// where a string child is always a text node. Nothing from the API is ever parsed as HTML
// (no string is ever parsed as markup: tests/handlers/console_test.cpp keeps it so).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'value' || name === 'checked' || name === 'selected') {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

// Replaces an element's content with `children` (text or elements).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// SVG elements need their namespace; attributes only, no text from the API.
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

// A labelled control: <label for=id>text</label> then the control.
let ids = 0;
export function field(text, control, hint) {
  if (!control.id) control.id = `f${++ids}`;
  const parts = [h('label', { for: control.id }, text), control];
  if (hint) {
    const hid = `${control.id}-hint`;
    control.setAttribute('aria-describedby', hid);
    parts.push(h('div', { id: hid, class: 'muted' }, hint));
  }
  return h('div', {}, parts);
}

export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
}

export function badge(text) {
  return h('span', { class: `badge ${text}` }, text);
}

// Seconds since the epoch, or an RFC 3339 string, as local date and time.
export function when(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

// "1d 02:03:04" for a countdown.
export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const d = Math.floor(seconds / 86400);
  const hms = [Math.floor(seconds / 3600) % 24, Math.floor(seconds / 60) % 60, seconds % 60]
    .map((n) => String(n).padStart(2, '0')).join(':');
  return d ? `${d}d ${hms}` : hms;
}
