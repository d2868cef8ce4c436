// keygate console: a client of the HTTP API in plain JavaScript modules, no build step,
// no dependency (docs/architecture.md says why). Pages are functions of the location's
// hash (#/keys); each renders into <main> with dom.js, which never parses HTML.
import { h, fill, field, select, badge, when, duration } from './dom.js';
import { call, session, ApiError } from './api.js';
import { RateChart, parseMetrics } from './chart.js';

const ALL_SCOPES = ['sessions:list', 'sessions:read', 'fingerprints:list', 'fingerprints:read',
  'organizations:create', 'organizations:read', 'organizations:update', 'api_keys:read',
  'api_keys:manage', 'gate:agent_tokens:verify', 'gate:agent_tokens:revoke',
  'gate:login_sessions:consume', 'gate:services:read', 'gate:services:manage',
  'api_keys:verify', 'certificates:read', 'certificates:manage'];
const EVENT_TYPES = ['organization.created', 'organization.updated', 'api_key.created',
  'api_key.updated', 'api_key.deleted', 'certificate.created', 'certificate.updated',
  'certificate.deleted', 'certificates.activated', 'certificates.deactivated',
  'project.created', 'project.updated', 'project.archived'];

// Who is signed in, learned at sign-in from the API itself.
const me = {
  root: false,       // the operator's root key
  orgId: null,       // the organization the pages act on (the root key picks one)
  orgName: '',
  keyId: null,
  scopes: null,      // Set of the key's scopes; null when they could not be read
};
const $main = document.getElementById('view');
let $view = $main;  // where the page being rendered draws (render() swaps it in when done)
const $status = document.getElementById('status');
const $dialog = document.getElementById('dialog');
let renderSeq = 0;  // the newest render: an older one still loading never shows

// setInterval for a page: it stops by itself once its page is off screen.
function every(ms, fn) {
  const el = $view;
  const timer = setInterval(() => { if (el.isConnected) fn(); else clearInterval(timer); }, ms);
}

function can(scope) { return me.root || me.scopes === null || me.scopes.has(scope); }
// A key may act on keys holding only scopes it holds itself (docs/api.md §2.5).
function mayActOn(key) { return me.root || me.scopes === null || (key.scopes || []).every((s) => me.scopes.has(s)); }
function grantable() { return me.root || me.scopes === null ? ALL_SCOPES : ALL_SCOPES.filter((s) => me.scopes.has(s)); }
function orgHeader() { return me.root ? me.orgId : undefined; }

function say(message, error = false) {
  $status.className = error ? 'error' : '';
  delete $status.dataset.from;
  fill($status, message || '');
}
function fail(e) {
  if (e instanceof ApiError) {
    say(`${e.message}${e.code ? ` (${e.code})` : ''}${e.requestId ? ` · ${e.requestId}` : ''}`, true);
    if (e.status === 401) signOut(false);
  } else {
    say(`The request failed: ${e.message}`, true);
  }
}
// Runs an action, reporting its failure; answers whether it succeeded.
async function attempt(fn) {
  try { await fn(); return true; } catch (e) { fail(e); return false; }
}

// ---- sign-in ---------------------------------------------------------------------------

async function learnWhoIAm() {
  const orgs = await call('GET', '/v1/organizations', { query: { limit: 2 } });
  const auth = await call('GET', '/v1/auth', { raw: true });
  const code = auth.headers.get('X-Keygate-Code');
  if (auth.status === 200) {
    me.root = false;
    me.orgId = auth.headers.get('X-Keygate-Organization-Id');
    me.keyId = auth.headers.get('X-Keygate-Key-Id');
    me.scopes = new Set((auth.headers.get('X-Keygate-Scopes') || '').split(',').filter(Boolean));
  } else if (auth.status === 401 && code === 'NOT_FOUND') {
    // Accepted by the management API, unknown to verification: the operator's root key.
    me.root = true;
    me.orgId = sessionStorage.getItem('keygate.console.org');
    me.keyId = null;
    me.scopes = null;
  } else {
    // A tenant key whose verification is gated (a certificate it must present, its rate
    // limit): its organization is the one it sees; its scopes are the server's to check.
    me.root = false;
    me.orgId = orgs.data[0] && orgs.data[0].id;
    me.keyId = null;
    me.scopes = null;
  }
  if (me.orgId) {
    const org = await call('GET', `/v1/organizations/${me.orgId}`).catch(() => null);
    me.orgName = org ? org.data.name : '';
  }
}

function signInPage() {
  setNav();
  const key = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, name: 'key' });
  const form = h('form', { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to keygate'),
    field('API key', key, 'A secret key (sk_…) of your organization, or the operator\'s root key. It is kept in this tab only, and forgotten when you sign out or close it.'),
    h('div', { class: 'bar' }, h('button', { class: 'primary', type: 'submit' }, 'Sign in')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = key.value.trim();
    if (value.startsWith('pk_')) return say('A publishable key cannot manage anything: sign in with a secret key.', true);
    session.key = value;
    key.value = '';
    if (await attempt(learnWhoIAm)) { say(''); go(me.root ? '#/node' : '#/overview'); route(); }
    else session.clear();
  });
  $view = $main;
  renderSeq++;
  $main.removeAttribute('aria-busy');
  fill($main, form);
  key.focus();
}

function signOut(navigate = true) {
  session.clear();
  sessionStorage.removeItem('keygate.console.org');
  Object.assign(me, { root: false, orgId: null, orgName: '', keyId: null, scopes: null });
  if (navigate) { say('Signed out.'); go('#/'); }
  route();
}

// ---- layout ----------------------------------------------------------------------------

// A page is offered when the key may read what it shows (the API would answer 403).
const PAGES = [
  ['#/overview', 'Overview', () => me.orgId],
  ['#/keys', 'API keys', () => me.orgId && can('api_keys:read')],
  ['#/projects', 'Projects', () => me.orgId && can('organizations:read')],
  ['#/certificates', 'Certificates', () => me.orgId && can('certificates:read')],
  ['#/audit', 'Audit log', () => me.orgId && can('organizations:read')],
  ['#/test', 'Test a key', () => true],
  ['#/orgs', 'Organizations', () => me.root],
  ['#/node', 'Node', () => me.root],
];

function setNav() {
  const signedIn = Boolean(session.key);
  const here = location.hash.split('?')[0];
  fill(document.getElementById('nav'), signedIn
    ? PAGES.filter(([, , shown]) => shown()).map(([href, text]) =>
      h('a', { href, 'aria-current': href === here ? 'page' : false }, text))
    : []);
  const who = me.root ? `root key${me.orgId ? ` · ${me.orgName || me.orgId}` : ''}`
    : me.orgId ? `${me.orgName} · ${me.keyId || 'secret key'}` : '';
  fill(document.getElementById('who'), signedIn ? who : '');
  document.getElementById('signout').hidden = !signedIn;
}

function go(hash) { if (location.hash !== hash) history.pushState(null, '', hash); }

function table(headers, rows, empty) {
  if (!rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((t) => (Array.isArray(t)
      ? h('th', { scope: 'col', class: t[1] }, t[0]) : h('th', { scope: 'col' }, t))))),
    h('tbody', {}, rows)));
}

// A modal dialog (<dialog>: focus moves into it, Escape closes it). `body` builds the
// content with a `close` function; answers when it closes.
function dialog(title, body) {
  return new Promise((resolve) => {
    const close = (value) => { $dialog.close(); resolve(value); };
    fill($dialog, h('h2', { id: 'dialog-title' }, title), body(close));
    $dialog.onclose = () => resolve(undefined);
    $dialog.showModal();
    const first = $dialog.querySelector('input, select, textarea, button.primary, button.danger');
    if (first) first.focus();
  });
}

function confirmDialog(title, text, action, danger = true) {
  return dialog(title, (close) => [h('p', {}, text), h('div', { class: 'bar' },
    h('button', { type: 'button', onclick: () => close(false) }, 'Cancel'),
    h('button', { type: 'button', class: danger ? 'danger' : 'primary', onclick: () => close(true) }, action))]);
}

// A value shown this once, with a copy button.
function showSecret(title, secret, note) {
  return dialog(title, (close) => {
    const out = h('input', { type: 'text', readonly: true, value: secret, 'aria-label': 'Secret key', class: 'mono', id: 'revealed-key' });
    const copied = h('span', { role: 'status', class: 'muted' });
    const copy = async () => {
      try { await navigator.clipboard.writeText(secret); } catch {
        out.select(); document.execCommand('copy');
      }
      fill(copied, 'Copied.');
    };
    return [h('p', {}, note), h('div', { class: 'secret' }, out,
      h('button', { type: 'button', onclick: copy, id: 'copy-secret' }, 'Copy')), copied,
    h('div', { class: 'bar' }, h('button', { type: 'button', class: 'primary', onclick: () => close() }, 'Done, I have stored it'))];
  });
}

// Collects a form's named controls. Checkboxes with one name make an array.
function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') { (out[el.name] ||= []); if (el.checked) out[el.name].push(el.value); } else out[el.name] = el.value;
  }
  return out;
}

function formDialog(title, controls, submitText, submit) {
  return dialog(title, (close) => {
    const form = h('form', {}, controls, h('div', { class: 'bar' },
      h('button', { type: 'button', onclick: () => close() }, 'Cancel'),
      h('button', { type: 'submit', class: 'primary' }, submitText)));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let result;
      if (await attempt(async () => { result = await submit(formValues(form)); })) { say(''); close(result ?? true); }
    });
    return form;
  });
}

function scopePicker(chosen, legend = 'Scopes') {
  return h('fieldset', {}, h('legend', {}, legend),
    grantable().map((s) => h('label', { class: 'inline' },
      h('input', { type: 'checkbox', name: 'scopes', value: s, checked: chosen.includes(s) }), s)));
}

function lines(text) { return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean); }

// ---- organization pages ----------------------------------------------------------------

async function projectList(all = true) {
  const out = [];
  let after;
  for (let i = 0; i < 20; ++i) {  // 2,000 projects at most in a picker
    const page = await call('GET', '/v1/organization/projects', { org: orgHeader(), query: { limit: 100, after, include_archived: all } });
    out.push(...page.data);
    if (!page.has_more) break;
    after = page.last_id;
  }
  return out;
}

async function countUpTo(path, query, org) {
  const page = await call('GET', path, { org, query: { ...query, limit: 100 } });
  return `${page.data.length}${page.has_more || (page.pagination && page.pagination.has_more) ? '+' : ''}`;
}

async function overviewPage() {
  if (!can('organizations:read')) {
    fill($view, h('h1', {}, me.orgName || 'Your organization'), h('p', { class: 'mono' }, me.orgId),
      h('p', { class: 'muted' }, 'This key cannot read its organization (organizations:read): the pages above are what it may use.'));
    return;
  }
  const org = (await call('GET', `/v1/organizations/${me.orgId}`)).data;
  const cards = h('div', { class: 'cards' });
  const card = (label, value) => h('div', { class: 'card' }, h('div', { class: 'muted' }, label), h('div', { class: 'n' }, value));
  fill($view, h('h1', {}, org.name), h('p', {}, badge(org.status), ' ', h('span', { class: 'mono' }, org.id),
    ` · slug ${org.slug} · created ${when(org.created_at)}`), cards);
  const figures = [card('Status', org.status)];
  if (can('api_keys:read')) {
    figures.push(card('Active keys', await countUpTo(`/v1/organizations/${me.orgId}/api-keys`, { status: 'active' })));
    figures.push(card('Rotating keys', await countUpTo(`/v1/organizations/${me.orgId}/api-keys`, { status: 'rotating' })));
  }
  if (can('organizations:read')) figures.push(card('Projects', await countUpTo('/v1/organization/projects', {}, orgHeader())));
  if (can('certificates:read')) figures.push(card('Certificates', await countUpTo('/v1/organization/certificates', {}, orgHeader())));
  fill(cards, figures);
}

// Paging state of the keys page: the cursors of the pages before this one.
const keysView = { filters: { status: '', type: '', environment: '', project_id: '', name: '' }, cursors: [], cursor: undefined };

async function keysPage() {
  const manage = can('api_keys:manage');
  const projects = can('organizations:read') ? await projectList().catch(() => []) : [];
  const projectName = new Map(projects.map((p) => [p.id, p.name]));
  const f = keysView.filters;
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter keys' },
    field('Status', select([['', 'Any'], ['active', 'active'], ['rotating', 'rotating'], ['expired', 'expired'], ['revoked', 'revoked']], f.status, { name: 'status' })),
    field('Type', select([['', 'Any'], ['secret', 'secret'], ['publishable', 'publishable']], f.type, { name: 'type' })),
    field('Environment', select([['', 'Any'], ['live', 'live'], ['test', 'test']], f.environment, { name: 'environment' })),
    field('Project', select([['', 'Any'], ...projects.map((p) => [p.id, p.name])], f.project_id, { name: 'project_id' })),
    field('Name contains', h('input', { type: 'search', name: 'name', value: f.name })),
    h('button', { type: 'submit' }, 'Apply'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    keysView.filters = formValues(filters);
    keysView.cursors = []; keysView.cursor = undefined;
    render();
  });
  // Name search is the console's own: the API filters by status, type, environment and
  // project; names are matched here, page after page, until a page of matches is full.
  const limit = 20;
  const rows = [];
  let cursor = keysView.cursor, more = false;
  const needle = f.name.trim().toLowerCase();
  walk: for (let walked = 0; walked < 50; ++walked) {  // 10,000 keys at most per search page
    const page = await call('GET', `/v1/organizations/${me.orgId}/api-keys`, {
      query: { status: f.status, type: f.type, environment: f.environment, project_id: f.project_id, cursor, limit: needle ? 200 : limit },
    });
    for (const [i, k] of page.data.entries()) {
      if (needle && !k.name.toLowerCase().includes(needle)) continue;
      rows.push(k);
      if (rows.length === limit) {
        cursor = k.id;
        more = i < page.data.length - 1 || page.pagination.has_more;
        break walk;
      }
    }
    more = page.pagination.has_more;
    cursor = page.pagination.next_cursor;
    if (!more) break;
  }
  const nextCursor = cursor;
  const body = rows.map((k) => {
    const status = [badge(k.status)];
    if (k.status === 'rotating' && k.grace_expires_at) {
      status.push(' ', h('span', { class: 'countdown muted', dataset: { until: k.grace_expires_at } }));
    }
    const actions = manage && mayActOn(k) && (k.status === 'active' || k.status === 'rotating') ? [
      h('button', { type: 'button', onclick: () => editKey(k) }, 'Edit'),
      k.status === 'active' ? h('button', { type: 'button', onclick: () => rotateKey(k) }, 'Rotate') : null,
      h('button', { type: 'button', class: 'danger', onclick: () => revokeKey(k) }, 'Revoke'),
    ] : [];
    return h('tr', { dataset: { key: k.id } },
      h('td', {}, h('div', {}, k.name), h('div', { class: 'mono muted' }, k.id)),
      h('td', { class: 'mono' }, k.display_key),
      h('td', {}, `${k.type} · ${k.environment}`),
      h('td', { class: 'wide' }, k.project_id ? (projectName.get(k.project_id) || k.project_id) : '—'),
      h('td', { class: 'wide' }, k.type === 'secret' ? `${(k.scopes || []).length} scopes` : (k.allowed_origins || []).join(' ') || 'any origin'),
      h('td', {}, status),
      h('td', { class: 'wide' }, when(k.last_used_at)),
      h('td', { class: 'actions' }, actions));
  });
  const pager = h('div', { class: 'bar' },
    h('button', { type: 'button', disabled: !keysView.cursors.length, onclick: () => { keysView.cursor = keysView.cursors.pop(); render(); } }, 'Previous'),
    h('button', { type: 'button', disabled: !more, onclick: () => { keysView.cursors.push(keysView.cursor); keysView.cursor = nextCursor; render(); } }, 'Next'));
  fill($view, h('h1', {}, 'API keys'),
    manage ? h('div', { class: 'bar' }, h('button', { type: 'button', class: 'primary', onclick: () => createKey(projects) }, 'Create key')) : null,
    filters,
    table(['Name', 'Key', 'Kind', ['Project', 'wide'], ['Scopes / origins', 'wide'], 'Status', ['Last used', 'wide'], ''], body, 'No keys match.'),
    pager);
  const shown = $view;
  tickCountdowns(shown);
  every(1000, () => tickCountdowns(shown));
}

function tickCountdowns(page) {
  const now = Date.now();
  for (const el of page.querySelectorAll('.countdown')) {
    const left = (new Date(el.dataset.until).getTime() - now) / 1000;
    el.textContent = left > 0 ? `grace ends in ${duration(left)}` : 'grace over';
  }
}

async function createKey(projects) {
  const type = select([['secret', 'secret'], ['publishable', 'publishable']], 'secret', { name: 'type' });
  const scopes = scopePicker(grantable());
  const origins = field('Allowed origins (one per line)', h('textarea', { name: 'allowed_origins', placeholder: 'https://app.example.com' }), 'Publishable keys only. None: any origin.');
  const sync = () => { scopes.hidden = type.value !== 'secret'; origins.hidden = type.value === 'secret'; };
  type.addEventListener('change', sync);
  sync();
  const active = projects.filter((p) => p.status === 'active');
  const created = await formDialog('Create an API key', [
    field('Name', h('input', { name: 'name', required: true, maxlength: 200 })),
    field('Type', type),
    field('Environment', select([['live', 'live'], ['test', 'test']], 'live', { name: 'environment' })),
    scopes, origins,
    field('Expires (optional)', h('input', { type: 'datetime-local', name: 'expires_at' })),
    active.length ? field('Project (optional)', select([['', 'None'], ...active.map((p) => [p.id, p.name])], '', { name: 'project_id' })) : null,
  ], 'Create', async (v) => {
    const body = { name: v.name, type: v.type, environment: v.environment };
    if (v.type === 'secret') body.scopes = v.scopes || [];
    else if (v.allowed_origins.trim()) body.allowed_origins = lines(v.allowed_origins);
    if (v.expires_at) body.expires_at = new Date(v.expires_at).toISOString().replace(/\.\d{3}Z$/, 'Z');
    if (v.project_id) body.project_id = v.project_id;
    return (await call('POST', `/v1/organizations/${me.orgId}/api-keys`, { body })).data;
  });
  if (!created) return;
  if (created.revealed_key && created.type === 'secret') {
    await showSecret(`Key “${created.name}” created`, created.revealed_key, 'This is the only time the secret is shown: copy it now and keep it somewhere safe. keygate keeps only its hash.');
  } else {
    say(`Key “${created.name}” created: ${created.display_key}`);
  }
  render();
}

async function editKey(k) {
  const controls = [field('Name', h('input', { name: 'name', required: true, maxlength: 200, value: k.name }))];
  if (k.type === 'secret') controls.push(scopePicker(k.scopes || []));
  else controls.push(field('Allowed origins (one per line)', h('textarea', { name: 'allowed_origins', value: (k.allowed_origins || []).join('\n') })));
  const done = await formDialog(`Edit “${k.name}”`, controls, 'Save', async (v) => {
    // Only what changed: the audit log then says what the admin changed, nothing more.
    const same = (a, b) => a.length === b.length && a.every((x) => b.includes(x));
    const body = {};
    if (v.name !== k.name) body.name = v.name;
    if (k.type === 'secret' && !same(v.scopes || [], k.scopes || [])) body.scopes = v.scopes || [];
    if (k.type !== 'secret' && !same(lines(v.allowed_origins), k.allowed_origins || [])) body.allowed_origins = lines(v.allowed_origins);
    if (!Object.keys(body).length) return true;
    return call('PATCH', `/v1/organizations/${me.orgId}/api-keys/${k.id}`, { body });
  });
  if (done) { say(`Key “${k.name}” saved.`); render(); }
}

async function rotateKey(k) {
  const created = await formDialog(`Rotate “${k.name}”`, [
    h('p', {}, `A new key replaces ${k.display_key}. The old one keeps working for the grace period, then verifies as EXPIRED.`),
    field('Grace period (seconds)', h('input', { type: 'number', name: 'grace', min: 0, max: 604800, value: 86400, required: true }), '0 ends it at once; at most 7 days (604800).'),
  ], 'Rotate', async (v) => (await call('POST', `/v1/organizations/${me.orgId}/api-keys/${k.id}/rotations`, { body: { grace_period_seconds: Number(v.grace) } })).data);
  if (!created) return;
  if (created.revealed_key && created.type === 'secret') {
    await showSecret(`“${created.name}” rotated`, created.revealed_key, 'The replacement\'s secret, shown this once: copy it now. The old key stops at the end of its grace period.');
  } else {
    say(`“${created.name}” rotated: ${created.display_key}`);
  }
  render();
}

async function revokeKey(k) {
  const yes = await confirmDialog(`Revoke “${k.name}”?`,
    `Revoking “${k.name}” (${k.display_key}, ${k.id}) stops it at once, everywhere. It cannot be undone.`,
    `Revoke “${k.name}”`);
  if (!yes) return;
  if (await attempt(() => call('DELETE', `/v1/organizations/${me.orgId}/api-keys/${k.id}`))) {
    say(`Key “${k.name}” revoked.`);
    render();
  }
}

async function projectsPage() {
  const manage = can('organizations:update');
  const projects = await projectList();
  const rows = projects.map((p) => h('tr', { dataset: { project: p.id } },
    h('td', {}, h('div', {}, p.name), h('div', { class: 'mono muted' }, p.id)),
    h('td', {}, badge(p.status)),
    h('td', { class: 'wide' }, when(p.created_at)),
    h('td', { class: 'actions' }, manage && p.status === 'active' ? [
      h('button', { type: 'button', onclick: () => renameProject(p) }, 'Rename'),
      h('button', { type: 'button', class: 'danger', onclick: () => archiveProject(p) }, 'Archive'),
    ] : [])));
  fill($view, h('h1', {}, 'Projects'),
    manage ? h('div', { class: 'bar' }, h('button', { type: 'button', class: 'primary', onclick: createProject }, 'Create project')) : null,
    table(['Name', 'Status', ['Created', 'wide'], ''], rows, 'No projects yet.'));
}

async function createProject() {
  const done = await formDialog('Create a project', [field('Name', h('input', { name: 'name', required: true, maxlength: 200 }))], 'Create',
    (v) => call('POST', '/v1/organization/projects', { org: orgHeader(), body: { name: v.name } }));
  if (done) render();
}

async function renameProject(p) {
  const done = await formDialog(`Rename “${p.name}”`, [field('Name', h('input', { name: 'name', required: true, maxlength: 200, value: p.name }))], 'Save',
    (v) => call('POST', `/v1/organization/projects/${p.id}`, { org: orgHeader(), body: { name: v.name } }));
  if (done) render();
}

async function archiveProject(p) {
  if (!await confirmDialog(`Archive “${p.name}”?`, `Archiving “${p.name}” (${p.id}) stops every key in it at once (PROJECT_ARCHIVED). It cannot be undone.`, `Archive “${p.name}”`)) return;
  if (await attempt(() => call('POST', `/v1/organization/projects/${p.id}/archive`, { org: orgHeader() }))) render();
}

const certView = { project: '' };

async function certificatesPage() {
  const manage = can('certificates:manage');
  const projects = can('organizations:read') ? (await projectList(false).catch(() => [])) : [];
  const base = certView.project ? `/v1/organization/projects/${certView.project}/certificates` : '/v1/organization/certificates';
  const certs = [];
  let after;
  for (let i = 0; i < 5; ++i) {  // an organization holds at most 50
    const page = await call('GET', base, { org: orgHeader(), query: { limit: 100, after, order: 'asc' } });
    certs.push(...page.data);
    if (!page.has_more) break;
    after = page.last_id;
  }
  const scope = select([['', 'The organization'], ...projects.map((p) => [p.id, `Project: ${p.name}`])], certView.project, { name: 'scope' });
  scope.addEventListener('change', () => { certView.project = scope.value; render(); });
  const toggle = async (c, on) => {
    if (await attempt(() => call('POST', `${base}/${on ? 'activate' : 'deactivate'}`, { org: orgHeader(), body: { certificate_ids: [c.id] } }))) render();
  };
  const rows = certs.map((c) => h('tr', { dataset: { certificate: c.id } },
    h('td', {}, h('div', {}, c.name || '(no name)'), h('div', { class: 'mono muted' }, c.id)),
    h('td', {}, badge(c.active ? 'active' : 'inactive')),
    h('td', { class: 'wide' }, `${when(c.certificate_details.valid_at)} → ${when(c.certificate_details.expires_at)}`),
    h('td', { class: 'actions' }, manage ? [
      h('button', { type: 'button', onclick: () => toggle(c, !c.active) }, c.active ? 'Deactivate' : 'Activate'),
      certView.project ? null : h('button', { type: 'button', class: 'danger', onclick: () => deleteCertificate(c) }, 'Delete'),
    ] : [])));
  fill($view, h('h1', {}, 'Certificates'),
    h('p', { class: 'muted' }, 'While any certificate is active, the keys it binds verify only when their caller presents one of them (docs/api.md §6).'),
    h('div', { class: 'filters' }, field('Active for', scope),
      manage && !certView.project ? h('button', { type: 'button', class: 'primary', onclick: uploadCertificate }, 'Upload certificate') : null),
    table(['Name', 'State', ['Valid', 'wide'], ''], rows, 'No certificates uploaded.'));
}

async function uploadCertificate() {
  const pem = h('textarea', { name: 'certificate', required: true, placeholder: '-----BEGIN CERTIFICATE-----' });
  const file = h('input', { type: 'file', accept: '.pem,.crt,.cer' });
  file.addEventListener('change', async () => { if (file.files[0]) pem.value = await file.files[0].text(); });
  const done = await formDialog('Upload a certificate', [
    field('Name', h('input', { name: 'name', maxlength: 200 })),
    field('PEM file', file), field('Certificate (PEM)', pem),
  ], 'Upload', (v) => call('POST', '/v1/organization/certificates', { org: orgHeader(), body: v.name ? { name: v.name, certificate: v.certificate } : { certificate: v.certificate } }));
  if (done) render();
}

async function deleteCertificate(c) {
  if (!await confirmDialog(`Delete “${c.name || c.id}”?`, `Deleting certificate “${c.name || c.id}” (${c.id}) cannot be undone.`, 'Delete')) return;
  if (await attempt(() => call('DELETE', `/v1/organization/certificates/${c.id}`, { org: orgHeader() }))) render();
}

const auditView = { filters: { event_types: '', actor: '', resource: '', from: '', to: '' }, after: undefined, before: undefined };

async function auditPage() {
  const f = auditView.filters;
  const filters = h('form', { class: 'filters', 'aria-label': 'Filter events' },
    field('Event type', select([['', 'Any'], ...EVENT_TYPES.map((t) => [t, t])], f.event_types, { name: 'event_types' })),
    field('Actor id', h('input', { name: 'actor', value: f.actor, placeholder: 'key_… or root' })),
    field('Resource id', h('input', { name: 'resource', value: f.resource, placeholder: 'key_…, proj_…' })),
    field('From', h('input', { type: 'datetime-local', name: 'from', value: f.from })),
    field('To', h('input', { type: 'datetime-local', name: 'to', value: f.to })),
    h('button', { type: 'submit' }, 'Apply'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    auditView.filters = formValues(filters);
    auditView.after = auditView.before = undefined;
    render();
  });
  const secs = (v) => (v ? Math.floor(new Date(v).getTime() / 1000) : undefined);
  const page = await call('GET', `/v1/organizations/${me.orgId}/audit-events`, {
    query: {
      limit: 20, after: auditView.after, before: auditView.before,
      event_types: f.event_types ? [f.event_types] : undefined,
      actor_ids: f.actor ? [f.actor] : undefined, resource_ids: f.resource ? [f.resource] : undefined,
      'effective_at[gte]': secs(f.from), 'effective_at[lte]': secs(f.to),
    },
  });
  const events = page.data;
  const rows = events.map((e) => h('tr', {},
    h('td', {}, when(e.effective_at)),
    h('td', {}, h('code', {}, e.type)),
    h('td', { class: 'mono' }, e.actor.id || e.actor.type),
    h('td', { class: 'mono wide' }, (e.resource_ids || []).join(' ')),
    h('td', { class: 'wide' }, h('details', {}, h('summary', {}, summarize(e)), h('code', {}, JSON.stringify(e.details, null, 1))))));
  // Newest first. "Newer" pages back with `before`; "Older" on with `after`. has_more
  // speaks of the direction asked; the other direction has more when we came from it.
  const pagedBack = auditView.before !== undefined;
  const newer = pagedBack ? page.pagination.has_more : auditView.after !== undefined;
  const older = pagedBack ? true : page.pagination.has_more;
  const pager = h('div', { class: 'bar' },
    h('button', { type: 'button', disabled: !newer || !events.length, onclick: () => { auditView.before = events[0].id; auditView.after = undefined; render(); } }, 'Newer'),
    h('button', { type: 'button', disabled: !older || !events.length, onclick: () => { auditView.after = events[events.length - 1].id; auditView.before = undefined; render(); } }, 'Older'));
  fill($view, h('h1', {}, 'Audit log'), filters,
    table(['When', 'Event', 'Actor', ['Resources', 'wide'], ['Details', 'wide']], rows, 'No events match.'), pager);
}

// One line for an event's details; the whole payload is under it.
function summarize(e) {
  const d = e.details || {};
  if (d.data) {
    const x = d.data;
    return [x.name !== undefined ? `“${x.name}”` : null, x.type, x.environment,
      x.scopes ? `${x.scopes.length} scopes` : null, x.rotated_from ? `rotated from ${x.rotated_from}` : null]
      .filter(Boolean).join(' · ');
  }
  if (d.changes_requested) return `changed ${Object.keys(d.changes_requested).join(', ')}`;
  if (d.replaced_by) return `rotated: replaced by ${d.replaced_by}, grace ${duration(d.expires_in_seconds || 0)}`;
  if (d.certificates) return d.certificates.map((c) => c.name || c.id).join(', ');
  if (d.name !== undefined) return `“${d.name}”`;
  return d.id || '';
}

function testPage() {
  const key = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true });
  const scopes = h('input', { name: 'scopes', placeholder: 'api_keys:read,certificates:read' });
  const out = h('div', { 'aria-live': 'polite', id: 'test-result' });
  const form = h('form', {}, field('Key to test', key),
    field('Required scopes (optional)', scopes, 'As a gateway would ask with ?scopes=.'),
    h('div', { class: 'bar' }, h('button', { type: 'submit', class: 'primary' }, 'Verify')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    await attempt(async () => {
      const res = await call('GET', '/v1/auth', { key: key.value.trim(), query: { scopes: scopes.value.trim() }, raw: true });
      const code = res.status === 200 ? 'VALID' : (res.headers.get('X-Keygate-Code') || `HTTP ${res.status}`);
      const shown = [...res.headers].filter(([n]) => n.startsWith('x-keygate-') || n.startsWith('x-ratelimit-') || n === 'retry-after' || n === 'www-authenticate');
      fill(out, h('p', {}, 'Result: ', h('strong', { id: 'test-code' }, code), ` (HTTP ${res.status})`),
        table(['Header', 'Value'], shown.map(([n, v]) => h('tr', {}, h('td', { class: 'mono' }, n), h('td', { class: 'mono' }, v))), 'No headers.'));
    });
  });
  fill($view, h('h1', {}, 'Test a key'),
    h('p', { class: 'muted' }, 'Calls GET /v1/auth with the key, as a gateway does, and shows what keygate answers. The key is not kept.'),
    form, out);
}

// ---- operator pages --------------------------------------------------------------------

const orgsView = { cursors: [], cursor: undefined };

async function orgsPage() {
  const page = await call('GET', '/v1/organizations', { query: { limit: 20, cursor: orgsView.cursor } });
  const rows = page.data.map((o) => h('tr', { dataset: { org: o.id } },
    h('td', {}, h('div', {}, o.name), h('div', { class: 'mono muted' }, o.id)),
    h('td', { class: 'wide' }, o.slug),
    h('td', {}, badge(o.status)),
    h('td', { class: 'wide' }, when(o.created_at)),
    h('td', { class: 'actions' },
      h('button', { type: 'button', onclick: () => openOrg(o) }, 'Open'),
      o.status === 'active'
        ? h('button', { type: 'button', class: 'danger', onclick: () => setOrgStatus(o, 'suspended') }, 'Suspend')
        : h('button', { type: 'button', onclick: () => setOrgStatus(o, 'active') }, 'Reactivate'))));
  const pager = h('div', { class: 'bar' },
    h('button', { type: 'button', disabled: !orgsView.cursors.length, onclick: () => { orgsView.cursor = orgsView.cursors.pop(); render(); } }, 'Previous'),
    h('button', { type: 'button', disabled: !page.pagination.has_more, onclick: () => { orgsView.cursors.push(orgsView.cursor); orgsView.cursor = page.pagination.next_cursor; render(); } }, 'Next'));
  fill($view, h('h1', {}, 'Organizations'),
    h('div', { class: 'bar' }, h('button', { type: 'button', class: 'primary', onclick: createOrg }, 'Create organization')),
    table(['Name', ['Slug', 'wide'], 'Status', ['Created', 'wide'], ''], rows, 'No organizations yet.'), pager);
}

function openOrg(o) {
  me.orgId = o.id;
  me.orgName = o.name;
  sessionStorage.setItem('keygate.console.org', o.id);
  go('#/overview');
  route();
}

async function createOrg() {
  const created = await formDialog('Create an organization', [
    field('Name', h('input', { name: 'name', required: true, maxlength: 200 })),
    field('Slug (optional)', h('input', { name: 'slug', maxlength: 64, pattern: '[a-z0-9-]+' }), 'Lowercase letters, digits and dashes; derived from the name when empty.'),
  ], 'Create', async (v) => call('POST', '/v1/organizations', { body: v.slug ? { name: v.name, slug: v.slug } : { name: v.name } }));
  if (!created) return;
  await showSecret(`“${created.data.name}” created`, created.data.api_key.revealed_key, 'Its first secret key, with every scope, shown this once: give it to the organization\'s admin.');
  render();
}

async function setOrgStatus(o, status) {
  if (status === 'suspended' && !await confirmDialog(`Suspend “${o.name}”?`, `Every key of “${o.name}” (${o.id}) stops verifying at once (ORGANIZATION_SUSPENDED) until it is reactivated.`, `Suspend “${o.name}”`)) return;
  if (await attempt(() => call('PATCH', `/v1/organizations/${o.id}`, { body: { status } }))) render();
}

async function nodePage() {
  const facts = h('div', { class: 'cards' });
  const chart = new RateChart(60);
  fill($view, h('h1', {}, 'Node'), facts, h('h2', {}, 'Verifications per second, by outcome'), chart.el,
    h('p', { class: 'muted' }, 'Sampled from /metrics every 2 seconds while this page is open.'));
  const card = (label, value, cls) => h('div', { class: 'card' }, h('div', { class: 'muted' }, label), h('div', { class: `n ${cls || ''}` }, value));
  const sample = async () => {
    const [ready, metrics] = await Promise.all([
      call('GET', '/readyz', { raw: true }).then((r) => r.json()),
      call('GET', '/metrics', { raw: true }).then((r) => r.text()),
    ]);
    const m = parseMetrics(metrics);
    const sum = (name) => m.filter((x) => x.name === name).reduce((a, x) => a + x.value, 0);
    const one = (name) => { const x = m.find((y) => y.name === name); return x ? x.value : null; };
    const version = (m.find((x) => x.name === 'keygate_build_info') || { labels: {} }).labels.version || '?';
    const cards = [
      card('Readiness', ready.status, ready.status === 'ready' ? 'ok' : 'bad'),
      card('Version', version),
      card('API keys', sum('keygate_api_keys').toLocaleString()),
      card('Organizations', sum('keygate_organizations').toLocaleString()),
      card('Connections', (one('keygate_connections') ?? 0).toLocaleString()),
    ];
    if (one('keygate_cluster_applied_revision') !== null) {
      cards.push(card('Cluster revision', one('keygate_cluster_applied_revision').toLocaleString()));
      cards.push(card('Revision lag', (one('keygate_cluster_revision_lag') ?? 0).toLocaleString()));
      cards.push(card('Vouching', one('keygate_cluster_vouching') ? 'yes' : 'no'));
      if (one('keygate_cluster_live_nodes') !== null) cards.push(card('Live nodes', one('keygate_cluster_live_nodes')));
    } else {
      cards.push(card('Mode', 'single node'));
    }
    fill(facts, cards);
    chart.add(Date.now(), new Map(m.filter((x) => x.name === 'keygate_verifications_total').map((x) => [x.labels.code, x.value])));
  };
  await sample();
  // One sample at a time: a node that hangs gets one request, not one every 2 s.
  let waiting = false;
  every(2000, async () => {
    if (waiting) return;
    waiting = true;
    try {
      await sample();
      if ($status.dataset.from === 'node') say('');
    } catch (e) {
      fail(e);
      $status.dataset.from = 'node';
    } finally {
      waiting = false;
    }
  });
}

// ---- routing ---------------------------------------------------------------------------

const ROUTES = {
  '#/overview': overviewPage, '#/keys': keysPage, '#/projects': projectsPage,
  '#/certificates': certificatesPage, '#/audit': auditPage, '#/test': testPage,
  '#/orgs': orgsPage, '#/node': nodePage,
};

// Re-renders the page on screen (after a change), keeping its filters and paging.
async function render() {
  const mine = ++renderSeq;
  const page = ROUTES[location.hash.split('?')[0]];
  setNav();
  $main.setAttribute('aria-busy', 'true');  // the page on screen is stale until replaced
  $view = h('div', { class: 'page' });
  const target = $view;
  try {
    await page();
  } catch (e) {
    fail(e);
  }
  if (mine === renderSeq) {
    $main.replaceChildren(target);
    $main.removeAttribute('aria-busy');
  }
}

async function route() {
  if (!session.key) return signInPage();
  if (!me.orgId && !me.root) {
    if (!await attempt(learnWhoIAm)) return signInPage();
  }
  const hash = location.hash.split('?')[0];
  const allowed = PAGES.find(([href, , shown]) => href === hash && shown());
  if (!allowed) go(me.root ? (me.orgId ? '#/overview' : '#/node') : '#/overview');
  say('');
  await render();
  $main.focus();
}

document.getElementById('signout').addEventListener('click', () => signOut());
// A link to #/page fires popstate (and hashchange after it): one render per navigation.
window.addEventListener('popstate', route);
route();
