// keygate's console in a real browser: puppeteer-core (pinned in package-lock.json) drives
// Debian's chromium against a running keygate, as an organization's admin, as a key that
// may only read, and as the operator. Run by tests/integration/console_test.cpp, which
// starts keygate and passes:
//   KEYGATE_URL        http://127.0.0.1:PORT
//   KEYGATE_ROOT_KEY   the root key
//   KEYGATE_CERT       a file holding a PEM certificate made by the test
//   KEYGATE_PID        the server's process id (stopped and continued, as a hung node)
//   KEYGATE_CHROMIUM   the browser (default /usr/bin/chromium)
//   KEYGATE_CONSOLE_SCREENSHOTS  where to write a PNG of each page (docs/console/ when
//                      refreshing the documentation's images)
// Exits 0 when every check holds; an assertion's message and stack otherwise.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import puppeteer from 'puppeteer-core';

const env = (name, fallback) => {
  const v = process.env[name] || fallback;
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const base = env('KEYGATE_URL');
const rootKey = env('KEYGATE_ROOT_KEY');
const shots = process.env.KEYGATE_CONSOLE_SCREENSHOTS;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The API directly, for what the test sets up and checks behind the console's back.
async function api(method, path, key, body) {
  const res = await fetch(base + path, {
    method, headers: { Authorization: `Bearer ${key}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : null };
}
async function verify(key) {
  const res = await fetch(`${base}/v1/auth`, { headers: { Authorization: `Bearer ${key}` } });
  return res.status === 200 ? 'VALID' : res.headers.get('x-keygate-code');
}

const acme = (await api('POST', '/v1/organizations', rootKey, { name: 'Acme Rockets' })).json.data;
const adminKey = acme.api_key.revealed_key;
const hostileName = '<img src=x onerror=alert(1)>';
assert.equal((await api('POST', '/v1/organizations', rootKey, { name: hostileName, slug: 'hostile' })).status, 201);
const reader = await api('POST', `/v1/organizations/${acme.id}/api-keys`, adminKey,
  { name: 'read only', scopes: ['api_keys:read', 'organizations:read', 'certificates:read'] });
assert.equal(reader.status, 201);
const readerKey = reader.json.data.revealed_key;
// A key that manages keys with three scopes: it may grant those three only.
const managerScopes = ['api_keys:manage', 'api_keys:read', 'organizations:read'];
const manager = await api('POST', `/v1/organizations/${acme.id}/api-keys`, adminKey, { name: 'key manager', scopes: managerScopes });
assert.equal(manager.status, 201);
const managerKey = manager.json.data.revealed_key;
// A key the page lists among others, and one the reader cannot act on.
assert.equal((await api('POST', `/v1/organizations/${acme.id}/api-keys`, adminKey, { name: 'billing service', environment: 'test' })).status, 201);

const browser = await puppeteer.launch({
  executablePath: env('KEYGATE_CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  // As root (CI's containers) chromium's sandbox cannot start.
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
const context = browser.defaultBrowserContext();
await context.overridePermissions(base, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 800 });
// Anything the page logs as an error (a CSP refusal among them), and any alert() a
// hostile value could raise, fails the test.
const problems = [];
// (A 401 the console expects, such as a revoked key tested, is logged by the browser
// as a failed load: those are left out.)
page.on('console', (m) => {
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
});
page.on('response', (r) => { if (r.status() === 404) problems.push(`404: ${r.url()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('dialog', async (d) => { problems.push(`a JavaScript dialog opened: ${d.message()}`); await d.dismiss(); });

const shot = async (name) => {
  if (!shots) return;
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${shots}/${name}.png` });
};
const text = () => page.$eval('body', (b) => b.innerText);
const waitText = (t, timeout = 5000) => page.waitForFunction((s) => document.body.innerText.includes(s), { timeout }, t);
// A filter of the page, once the page has finished loading (a message can name a new key
// before the list that shows it is drawn).
const choose = async (selector, value) => {
  await page.waitForSelector('main:not([aria-busy])');
  await page.select(selector, value);
};
const click = async (selector) => {
  await page.waitForSelector('main:not([aria-busy])');
  await page.waitForSelector(selector, { visible: true });
  await page.click(selector);
};
const clickButton = async (label, within = 'body') => {
  const handle = await page.waitForFunction((l, w) => !document.querySelector('main[aria-busy]') && [...document.querySelector(w).querySelectorAll('button')]
    .find((b) => b.textContent.trim() === l && !b.disabled && b.offsetParent !== null), { timeout: 5000 }, label, within);
  await handle.click();
};
const rowButton = async (name, label) => {
  const handle = await page.waitForFunction((n, l) => {
    if (document.querySelector('main[aria-busy]')) return null;  // a page is loading
    const row = [...document.querySelectorAll('tbody tr')].find((r) => r.cells[0].innerText.split('\n')[0] === n);
    return row && [...row.querySelectorAll('button')].find((b) => b.textContent === l);
  }, { timeout: 5000 }, name, label);
  await handle.click();
};
const rowText = (name) => page.evaluate((n) => {
  const row = [...document.querySelectorAll('tbody tr')].find((r) => r.cells[0].innerText.split('\n')[0] === n);
  return row ? row.innerText : null;
}, name);
const signIn = async (key) => {
  await page.goto(`${base}/console`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('input[name=key]');
  await page.type('input[name=key]', key);
  await page.keyboard.press('Enter');  // the form submits from the keyboard
  await page.waitForSelector('#signout:not([hidden])');
};
const signOut = async () => {
  await click('#signout');
  await page.waitForSelector('input[name=key]');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sign-out forgets the key');
};

let failed = false;
try {
  if (process.env.KEYGATE_CONSOLE_CLUSTER) await clusterNodePage();
  else await wholeConsole();
  assert.deepEqual(problems, [], 'no error on the page');
  console.log('every check passed');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);

// A cluster node (KEYGATE_CONSOLE_CLUSTER=1): the operator's node page shows where the node
// stands against etcd.
async function clusterNodePage() {
  await signIn(rootKey);
  await page.waitForSelector('.chart svg');
  const card = (label) => page.evaluate((l) => {
    const c = [...document.querySelectorAll('.card')].find((x) => x.firstChild.textContent === l);
    return c ? c.lastChild.textContent : null;
  }, label);
  await page.waitForFunction(() => document.body.innerText.includes('Cluster revision'));
  assert.ok(Number((await card('Cluster revision')).replace(/\D/g, '')) > 0, 'a revision');
  assert.equal(await card('Revision lag'), '0');
  assert.equal(await card('Vouching'), 'yes');
  assert.equal(await card('Live nodes'), '1');
  assert.equal(await card('Readiness'), 'ready');
  await shot('node-cluster');
}

// Everything else, on a single node.
async function wholeConsole() {
  // --- The page itself: its policy, no frame, nothing but itself.
  const res = await fetch(`${base}/console/`);
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /frame-ancestors 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const external = [];
  // (data: URLs are the browser's own, such as a date field's calendar icon: no network.)
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) external.push(r.url()); });

  // --- Sign-in page, keyboard first: the skip link, then the key's field.
  await page.goto(`${base}/console`, { waitUntil: 'networkidle0' });
  assert.equal(new URL(page.url()).pathname, '/console/', '/console redirects to /console/');
  await shot('sign-in');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'key', 'the key field has focus');

  // --- An organization's admin.
  await signIn(adminKey);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('keygate.console.key')), adminKey);
  assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
  assert.ok(!page.url().includes(adminKey), 'the key is not in the URL');
  await waitText('Acme Rockets');
  await waitText('Active keys');
  await shot('overview');

  // Every control has a label, and the page has no horizontal scroll at 1280 px.
  const unlabelled = async () => page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label')).map((e) => e.name || e.outerHTML));

  await click('nav a[href="#/keys"]');
  await waitText('billing service');
  assert.deepEqual(await unlabelled(), []);

  // The keyboard alone: the skip link is the page's first stop; after a navigation focus
  // is on the page's content, so Tab reaches "Create key", with a visible focus ring; Enter
  // opens the dialog with focus inside; Escape closes it.
  assert.equal(await page.evaluate(() => document.querySelector('a[href], button, input, select, textarea').textContent), 'Skip to content');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'view');
  let reached = false;
  for (let i = 0; i < 5 && !reached; ++i) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.textContent === 'Create key');
  }
  assert.ok(reached, 'Tab reaches "Create key"');
  assert.notEqual(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), 'none', 'focus is visible');
  await page.keyboard.press('Enter');
  await page.waitForSelector('dialog[open]');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'name', 'focus moves into the dialog');
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.querySelector('dialog[open]'));
  await clickButton('Create key');
  await page.waitForSelector('dialog[open] input[name=name]');
  assert.deepEqual(await unlabelled(), []);
  await page.type('dialog[open] input[name=name]', 'ci deploy');
  // The scopes picker offers what this key may grant: all of them, for the first key.
  assert.equal(await page.$$eval('dialog[open] input[name=scopes]', (els) => els.length), 17);
  await page.click('dialog[open] input[value="certificates:manage"]');  // unticked: not granted
  await shot('create-key');
  await clickButton('Create', 'dialog[open]');
  await page.waitForSelector('#revealed-key');
  const secret = await page.$eval('#revealed-key', (e) => e.value);
  assert.match(secret, /^sk_live_/);
  await clickButton('Copy', 'dialog[open]');
  await waitText('Copied.');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'the copy button copies the secret');
  await shot('key-secret');
  await clickButton('Done, I have stored it');
  await page.waitForFunction(() => !document.querySelector('dialog[open]'));
  assert.ok(!(await page.content()).includes(secret), 'the secret is gone from the page once closed');
  assert.equal(await verify(secret), 'VALID');
  await waitText('ci deploy');
  const created = (await api('GET', `/v1/organizations/${acme.id}/api-keys?limit=200`, adminKey)).json.data.find((k) => k.name === 'ci deploy');
  assert.ok(!created.scopes.includes('certificates:manage'), 'the picker\'s choice was sent');

  // Filters and search.
  await choose('select[name=environment]', 'test');
  await clickButton('Apply');
  await page.waitForFunction(() => !document.body.innerText.includes('ci deploy'));
  await waitText('billing service');
  await choose('select[name=environment]', '');
  await page.type('input[name=name]', 'DEPLOY');
  await clickButton('Apply');
  await page.waitForFunction(() => !document.body.innerText.includes('billing service'));
  await waitText('ci deploy');
  await page.$eval('input[name=name]', (e) => { e.value = ''; });
  await clickButton('Apply');
  await waitText('billing service');

  // Rotate, with a countdown while the grace period runs.
  await rowButton('ci deploy', 'Rotate');
  await page.waitForSelector('dialog[open] input[name=grace]');
  await page.$eval('dialog[open] input[name=grace]', (e) => { e.value = '3600'; });
  await clickButton('Rotate', 'dialog[open]');
  await page.waitForSelector('#revealed-key');
  const rotated = await page.$eval('#revealed-key', (e) => e.value);
  assert.notEqual(rotated, secret);
  await clickButton('Done, I have stored it');
  await page.waitForFunction(() => document.querySelector('.countdown')?.textContent.startsWith('grace ends in 00:59:'));
  const first = await page.$eval('.countdown', (e) => e.textContent);
  await sleep(1500);
  assert.notEqual(await page.$eval('.countdown', (e) => e.textContent), first, 'the countdown runs');
  assert.equal(await verify(secret), 'VALID', 'the old key works during its grace period');
  assert.equal(await verify(rotated), 'VALID');
  await shot('keys');

  // Revoke the replacement, after a confirmation that names it. Two rows are named
  // "ci deploy" now (old and new): the active one is the replacement.
  const newId = (await api('GET', `/v1/organizations/${acme.id}/api-keys?status=active&limit=200`, adminKey)).json.data.find((k) => k.name === 'ci deploy').id;
  const revokeButton = await page.waitForFunction((id) => [...document.querySelector(`tr[data-key="${id}"]`).querySelectorAll('button')].find((b) => b.textContent === 'Revoke'), {}, newId);
  await revokeButton.click();
  await page.waitForSelector('dialog[open]');
  const question = await page.$eval('dialog[open]', (d) => d.innerText);
  assert.ok(question.includes('ci deploy') && question.includes(newId), `the confirmation names the key: ${question}`);
  await clickButton('Cancel', 'dialog[open]');
  assert.equal(await verify(rotated), 'VALID', 'cancel revokes nothing');
  await (await page.waitForFunction((id) => [...document.querySelector(`tr[data-key="${id}"]`).querySelectorAll('button')].find((b) => b.textContent === 'Revoke'), {}, newId)).click();
  await clickButton('Revoke “ci deploy”', 'dialog[open]');
  await page.waitForFunction((id) => document.querySelector(`tr[data-key="${id}"]`)?.innerText.includes('revoked'), {}, newId);
  assert.equal(await verify(rotated), 'REVOKED');

  // Edit a key's name.
  await rowButton('billing service', 'Edit');
  await page.waitForSelector('dialog[open] input[name=name]');
  await page.$eval('dialog[open] input[name=name]', (e) => { e.value = ''; });
  await page.type('dialog[open] input[name=name]', 'billing worker');
  await clickButton('Save', 'dialog[open]');
  await waitText('billing worker');
  const edits = (await api('GET', `/v1/organizations/${acme.id}/audit-events?event_types[]=api_key.updated&limit=1`, adminKey)).json.data;
  assert.deepEqual(edits[0].details.changes_requested, { name: 'billing worker' }, 'an edit sends only what changed');

  // Projects: create, rename, archive.
  await click('nav a[href="#/projects"]');
  await clickButton('Create project');
  await page.type('dialog[open] input[name=name]', 'Storefront');
  await clickButton('Create', 'dialog[open]');
  await waitText('Storefront');
  await rowButton('Storefront', 'Rename');
  await page.$eval('dialog[open] input[name=name]', (e) => { e.value = ''; });
  await page.type('dialog[open] input[name=name]', 'Web store');
  await clickButton('Save', 'dialog[open]');
  await waitText('Web store');
  await shot('projects');
  await rowButton('Web store', 'Archive');
  await clickButton('Archive “Web store”', 'dialog[open]');
  await page.waitForFunction(() => [...document.querySelectorAll('tbody tr')].some((r) => r.innerText.includes('Web store') && r.innerText.includes('archived')));

  // Certificates: upload, activate, deactivate, delete; and per project.
  await clickButton('Create project');
  await page.type('dialog[open] input[name=name]', 'Partners');
  await clickButton('Create', 'dialog[open]');
  await waitText('Partners');

  // A publishable key in a project, with origins and an expiry; then the project filter.
  await click('nav a[href="#/keys"]');
  await clickButton('Create key');
  await page.waitForSelector('dialog[open] select[name=project_id]');
  await page.type('dialog[open] input[name=name]', 'partner widget');
  await page.select('dialog[open] select[name=type]', 'publishable');
  assert.ok(await page.$eval('dialog[open] input[name=scopes]', (e) => e.closest('fieldset').hidden), 'no scopes for a publishable key');
  await page.type('dialog[open] textarea[name=allowed_origins]', 'https://partners.example.com\nhttps://*.partners.example.com');
  const tomorrow = new Date(Date.now() + 86400e3);
  const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  await page.$eval('dialog[open] input[name=expires_at]', (e, v) => { e.value = v; }, local);
  const partnersId = await page.$$eval('dialog[open] select[name=project_id] option', (os) => os.find((o) => o.textContent === 'Partners').value);
  await page.select('dialog[open] select[name=project_id]', partnersId);
  await clickButton('Create', 'dialog[open]');
  await waitText('partner widget');
  const widget = (await api('GET', `/v1/organizations/${acme.id}/api-keys?type=publishable`, adminKey)).json.data[0];
  assert.equal(widget.project_id, partnersId);
  assert.deepEqual(widget.allowed_origins, ['https://partners.example.com', 'https://*.partners.example.com']);
  assert.ok(Math.abs(new Date(widget.expires_at) - tomorrow) < 120e3, `expires about a day from now: ${widget.expires_at}`);
  await choose('select[name=project_id]', partnersId);
  await clickButton('Apply');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 1 && document.body.innerText.includes('partner widget'));
  await choose('select[name=project_id]', '');
  await clickButton('Apply');
  await waitText('billing worker');

  await click('nav a[href="#/certificates"]');
  await clickButton('Upload certificate');
  await page.type('dialog[open] input[name=name]', 'partner gateway');
  await page.$eval('dialog[open] textarea[name=certificate]', (e, pem) => { e.value = pem; }, readFileSync(env('KEYGATE_CERT'), 'utf8'));
  await clickButton('Upload', 'dialog[open]');
  await waitText('partner gateway');
  await rowButton('partner gateway', 'Activate');
  await page.waitForFunction(() => document.querySelector('tbody tr')?.innerText.includes('active') && !document.querySelector('tbody tr').innerText.includes('inactive'));
  assert.equal(await verify(adminKey), 'CERTIFICATE_REQUIRED', 'activation binds the organization\'s keys');
  await shot('certificates');
  await rowButton('partner gateway', 'Deactivate');
  await page.waitForFunction(() => document.querySelector('tbody tr')?.innerText.includes('inactive'));
  assert.equal(await verify(adminKey), 'VALID');
  const projects = await page.$$eval('select[name=scope] option', (os) => os.map((o) => [o.value, o.textContent]));
  const partners = projects.find(([, t]) => t === 'Project: Partners');
  assert.ok(partners, `the project is offered: ${JSON.stringify(projects)}`);
  await choose('select[name=scope]', partners[0]);
  await rowButton('partner gateway', 'Activate');
  await page.waitForFunction(() => document.querySelector('tbody tr')?.innerText.includes('active') && !document.querySelector('tbody tr').innerText.includes('inactive'));
  assert.equal(await verify(adminKey), 'VALID', 'a project\'s certificate binds only that project\'s keys');
  await rowButton('partner gateway', 'Deactivate');
  await page.waitForFunction(() => document.querySelector('tbody tr')?.innerText.includes('inactive'));
  await choose('select[name=scope]', '');
  await rowButton('partner gateway', 'Delete');
  await clickButton('Delete', 'dialog[open]');
  await waitText('No certificates uploaded.');

  // Enough keys for a second page of keys and of events (the console's pages hold 20).
  for (let i = 0; i < 16; ++i)
    assert.equal((await api('POST', `/v1/organizations/${acme.id}/api-keys`, adminKey, { name: `filler ${String(i).padStart(2, '0')}` })).status, 201);

  // The audit log shows what was just done, newest first, and pages both ways.
  // (The filter's options name every type: look in the table's column only.)
  const column = () => page.$$eval('tbody tr', (rows) => rows.map((r) => r.cells[1].innerText));
  const waitEvent = (t) => page.waitForFunction((x) => !document.querySelector('main[aria-busy]') &&
    [...document.querySelectorAll('tbody tr')].some((r) => r.cells[1].innerText === x), { timeout: 5000 }, t);
  await click('nav a[href="#/audit"]');
  await waitEvent('certificate.deleted');
  let types = await column();
  assert.deepEqual(types.slice(15, 20), ['api_key.created', 'certificate.deleted', 'certificates.deactivated', 'certificates.activated', 'certificates.deactivated'], 'newest first');
  await clickButton('Older');
  await waitEvent('organization.created');
  await shot('audit');
  types = await column();
  for (const t of ['certificate.created', 'project.archived', 'project.updated', 'project.created', 'api_key.deleted', 'api_key.updated', 'api_key.created'])
    assert.ok(types.includes(t), `the audit log shows ${t}: ${types}`);
  assert.equal(types[types.length - 1], 'organization.created', 'the oldest last');
  assert.ok(await page.$eval('xpath/.//button[text()="Older"]', (b) => b.disabled), 'nothing older');
  await clickButton('Newer');
  await waitEvent('certificate.deleted');
  assert.deepEqual((await column()).slice(15, 17), ['api_key.created', 'certificate.deleted']);
  await choose('select[name=event_types]', 'api_key.deleted');
  await clickButton('Apply');
  await page.waitForFunction(() => [...document.querySelectorAll('tbody tr')].every((r) => r.cells[1].innerText === 'api_key.deleted'));

  // Test a key.
  await click('nav a[href="#/test"]');
  await page.type('input[name=key]', rotated);
  await clickButton('Verify');
  await page.waitForFunction(() => document.querySelector('#test-code')?.textContent === 'REVOKED');
  await page.$eval('input[name=key]', (e) => { e.value = ''; });
  await page.type('input[name=key]', secret);
  await page.type('input[name=scopes]', 'api_keys:read');
  await clickButton('Verify');
  await page.waitForFunction(() => document.querySelector('#test-code')?.textContent === 'VALID');
  assert.ok((await text()).includes('x-keygate-organization-id'), 'the headers are shown');
  await shot('test-key');

  // At a phone's width, nothing runs off the side.
  await page.setViewport({ width: 390, height: 844 });
  await click('nav a[href="#/keys"]');
  await waitText('billing worker');
  // 23 keys: a second page of three.
  await clickButton('Next');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr').length === 3 && document.body.innerText.includes('filler 15'));
  await clickButton('Previous');
  await waitText('billing worker');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no horizontal scroll at 390 px');
  await shot('keys-phone');
  await page.setViewport({ width: 1280, height: 800 });
  await signOut();

  // --- A key that manages keys with three scopes: the picker offers those three, and keys
  // holding more show no action (api.md §2.5).
  await signIn(managerKey);
  assert.deepEqual(await page.$$eval('nav a', (as) => as.map((a) => a.textContent)),
    ['Overview', 'API keys', 'Projects', 'Audit log', 'Test a key'], 'no Certificates page without certificates:read');
  await click('nav a[href="#/keys"]');
  await waitText('billing worker');
  assert.equal(await rowText('billing worker').then((t) => /Edit|Rotate|Revoke/.test(t)), false, 'no action on a wider key');
  assert.ok(/Rotate/.test(await rowText('key manager')), 'actions on a key within its scopes');
  await clickButton('Create key');
  await page.waitForSelector('dialog[open] input[name=scopes]');
  assert.deepEqual((await page.$$eval('dialog[open] input[name=scopes]', (els) => els.map((e) => e.value))).sort(), [...managerScopes].sort());
  await clickButton('Cancel', 'dialog[open]');
  await signOut();

  // --- A key that may only read sees no manage controls (and the server refuses anyway).
  await signIn(readerKey);
  await click('nav a[href="#/keys"]');
  await waitText('billing worker');
  const buttons = await page.$$eval('main button', (bs) => bs.map((b) => b.textContent));
  for (const b of ['Create key', 'Edit', 'Rotate', 'Revoke']) assert.ok(!buttons.includes(b), `a read-only key sees no ${b}: ${buttons}`);
  await click('nav a[href="#/certificates"]');
  await waitText('No certificates uploaded.');
  assert.ok(!(await page.$$eval('main button', (bs) => bs.map((b) => b.textContent))).includes('Upload certificate'));
  assert.equal((await api('POST', `/v1/organizations/${acme.id}/api-keys`, readerKey, { name: 'x' })).status, 403);
  await signOut();

  // --- The operator: organizations (a hostile name is text), the node page and its chart.
  await signIn(rootKey);
  await page.waitForSelector('.chart svg');
  await click('nav a[href="#/orgs"]');
  await waitText(hostileName);
  assert.equal(await page.$$eval('main img', (imgs) => imgs.length), 0, 'a hostile name is never HTML');
  await shot('organizations');
  await rowButton(hostileName, 'Suspend');
  await clickButton(`Suspend “${hostileName}”`, 'dialog[open]');
  await page.waitForFunction((n) => [...document.querySelectorAll('tbody tr')].some((r) => r.innerText.includes(n) && r.innerText.includes('suspended')), {}, hostileName);
  await rowButton(hostileName, 'Reactivate');
  await page.waitForFunction((n) => [...document.querySelectorAll('tbody tr')].some((r) => r.innerText.includes(n) && r.innerText.includes('active') && !r.innerText.includes('suspended')), {}, hostileName);
  await clickButton('Create organization');
  await page.type('dialog[open] input[name=name]', 'Globex');
  await clickButton('Create', 'dialog[open]');
  await page.waitForSelector('#revealed-key');
  assert.equal(await verify(await page.$eval('#revealed-key', (e) => e.value)), 'VALID');
  await clickButton('Done, I have stored it');
  await waitText('Globex');
  // Open an organization: the tenant pages act on it, through OpenAI-Organization.
  await rowButton('Acme Rockets', 'Open');
  await waitText('Active keys');
  await click('nav a[href="#/projects"]');
  await waitText('Partners');

  await click('nav a[href="#/node"]');
  await waitText('single node');
  await waitText('Version');
  // Load: verifications of valid and revoked keys while the page samples /metrics.
  const until = Date.now() + 7000;
  const load = (async () => {
    while (Date.now() < until) await Promise.all([verify(secret), verify(rotated), verify(secret)]);
  })();
  await page.waitForFunction(() => {
    const valid = document.querySelector('.legend [data-code="VALID"]');
    const revoked = document.querySelector('.legend [data-code="REVOKED"]');
    return valid && parseFloat(valid.textContent.split(' ')[1]) > 0 && revoked && parseFloat(revoked.textContent.split(' ')[1]) > 0;
  }, { timeout: 10000 });
  const points = await page.$eval('.chart polyline[data-code="VALID"]', (p) => p.getAttribute('points'));
  await load;
  await page.waitForFunction((p) => document.querySelector('.chart polyline[data-code="VALID"]')?.getAttribute('points') !== p, { timeout: 6000 }, points);
  await shot('node');

  // A node that hangs (SIGSTOP): the page says so within its 10 s deadline, asks once at a
  // time meanwhile, and carries on by itself when the node does.
  const pid = Number(env('KEYGATE_PID'));
  process.kill(pid, 'SIGSTOP');
  try {
    await page.waitForFunction(() => document.getElementById('status').textContent.includes('did not answer within 10 s'), { timeout: 16000 });
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await page.waitForFunction(() => document.getElementById('status').textContent === '', { timeout: 8000 });
  await signOut();

  assert.deepEqual(external, [], 'the console reaches nothing but keygate');
}
