// The official OpenAI Node SDK (pinned in package-lock.json) against a running keygate:
// every call of the Admin API that keygate serves (certificates, projects, project
// certificates, project API keys), through the SDK's own request building,
// response parsing, auto-pagination and error classes. Run by tests/integration/sdk_test.cpp,
// which starts keygate and passes:
//   KEYGATE_BASE_URL   http://127.0.0.1:PORT/v1
//   KEYGATE_ADMIN_KEY  a tenant's secret key (the SDK's admin key)
//   KEYGATE_ROOT_KEY   the root key, which names the organization as OpenAI-Organization
//   KEYGATE_ORG_ID     that tenant's organization
//   KEYGATE_CERT_A, KEYGATE_CERT_B   files holding two PEM certificates made by the test
// Exits 0 when every check holds; an assertion's message and stack otherwise.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const client = new OpenAI({
  apiKey: 'unused',
  adminAPIKey: env('KEYGATE_ADMIN_KEY'),
  baseURL: env('KEYGATE_BASE_URL'),
  maxRetries: 0,
});
const admin = client.admin.organization;

async function collect(page) {
  const out = [];
  for await (const item of page) out.push(item);
  return out;
}

async function rejects(promise, ErrorClass, status) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof ErrorClass, `expected ${ErrorClass.name}, got ${e?.constructor?.name}: ${e}`);
    assert.equal(e.status, status);
    return true;
  });
}

// --- Certificates, organization level ---------------------------------------------------
const certA = readFileSync(env('KEYGATE_CERT_A'), 'utf8');
const certB = readFileSync(env('KEYGATE_CERT_B'), 'utf8');

const a = await admin.certificates.create({ certificate: certA, name: 'Gateway A' });
assert.equal(a.object, 'certificate');
assert.match(a.id, /^cert_/);
assert.equal(a.name, 'Gateway A');
assert.equal(a.certificate_details.content, certA);
assert.equal(typeof a.certificate_details.valid_at, 'number');
assert.equal(typeof a.certificate_details.expires_at, 'number');
assert.equal(typeof a.created_at, 'number');

const b = await admin.certificates.create({ certificate: certB });
await rejects(admin.certificates.create({ certificate: certA }), OpenAI.ConflictError, 409);
await rejects(admin.certificates.create({ certificate: 'not a pem' }), OpenAI.BadRequestError, 400);

const got = await admin.certificates.retrieve(a.id);
assert.equal(got.id, a.id);
assert.equal(got.certificate_details.content, undefined);
const withContent = await admin.certificates.retrieve(a.id, { include: ['content'] });
assert.equal(withContent.certificate_details.content, certA);
await rejects(admin.certificates.retrieve('cert_01M81RKQRM0AXC52V8F5VHBJF0'), OpenAI.NotFoundError, 404);

const renamed = await admin.certificates.update(b.id, { name: 'Gateway B' });
assert.equal(renamed.name, 'Gateway B');

// Auto-pagination walks every page, in either order.
const asc = await collect(admin.certificates.list({ limit: 1, order: 'asc' }));
assert.deepEqual(asc.map((c) => c.id), [a.id, b.id]);
assert.equal(asc[0].object, 'organization.certificate');
assert.equal(asc[0].active, false);
const desc = await collect(admin.certificates.list({ limit: 1 }));
assert.deepEqual(desc.map((c) => c.id), [b.id, a.id]);
const first = await admin.certificates.list({ limit: 1, order: 'asc' });
assert.equal(first.data.length, 1);
assert.equal(first.hasNextPage(), true);

const activated = await collect(admin.certificates.activate({ certificate_ids: [a.id, b.id] }));
assert.deepEqual(activated.map((c) => [c.id, c.active]), [[a.id, true], [b.id, true]]);
await rejects(admin.certificates.delete(a.id), OpenAI.ConflictError, 409);
const deactivated = await collect(admin.certificates.deactivate({ certificate_ids: [a.id] }));
assert.deepEqual(deactivated.map((c) => [c.id, c.active]), [[a.id, false]]);
const deleted = await admin.certificates.delete(a.id);
assert.equal(deleted.id, a.id);
assert.equal(deleted.object, 'certificate.deleted');
await rejects(
  admin.certificates.activate({ certificate_ids: [a.id] }), OpenAI.NotFoundError, 404);
await admin.certificates.deactivate({ certificate_ids: [b.id] });

// --- Projects -----------------------------------------------------------------------------
const p1 = await admin.projects.create({ name: 'Web' });
assert.equal(p1.object, 'organization.project');
assert.match(p1.id, /^proj_/);
assert.equal(p1.name, 'Web');
assert.equal(p1.status, 'active');
assert.equal(p1.archived_at, null);
assert.equal(typeof p1.created_at, 'number');
const p2 = await admin.projects.create({ name: 'Batch' });
const p3 = await admin.projects.create({ name: 'Old' });

assert.deepEqual(await admin.projects.retrieve(p1.id), p1);
const updated = await admin.projects.update(p2.id, { name: 'Batch jobs' });
assert.equal(updated.name, 'Batch jobs');
const archived = await admin.projects.archive(p3.id);
assert.equal(archived.status, 'archived');
assert.equal(typeof archived.archived_at, 'number');
await rejects(admin.projects.retrieve('proj_01M81RKQRM0AXC52V8F5VHBJF0'), OpenAI.NotFoundError, 404);
await rejects(admin.projects.create({ name: '' }), OpenAI.BadRequestError, 400);

const active = await collect(admin.projects.list({ limit: 1 }));
assert.deepEqual(active.map((p) => p.id), [p1.id, p2.id]);
const all = await collect(admin.projects.list({ limit: 2, include_archived: true }));
assert.deepEqual(all.map((p) => [p.id, p.status]),
  [[p1.id, 'active'], [p2.id, 'active'], [p3.id, 'archived']]);

// --- Certificates per project ---------------------------------------------------------------
const activatedInP1 = await collect(
  admin.projects.certificates.activate(p1.id, { certificate_ids: [b.id] }));
assert.deepEqual(activatedInP1.map((c) => [c.object, c.id, c.active]),
  [['organization.project.certificate', b.id, true]]);
const inP1 = await collect(admin.projects.certificates.list(p1.id, { limit: 1 }));
assert.deepEqual(inP1.map((c) => [c.id, c.active]), [[b.id, true]]);
const inP2 = await collect(admin.projects.certificates.list(p2.id));
assert.deepEqual(inP2.map((c) => [c.id, c.active]), [[b.id, false]]);
await rejects(admin.certificates.delete(b.id), OpenAI.ConflictError, 409);
await rejects(
  admin.projects.certificates.activate('proj_01M81RKQRM0AXC52V8F5VHBJF0', { certificate_ids: [b.id] }),
  OpenAI.NotFoundError, 404);
const offInP1 = await collect(
  admin.projects.certificates.deactivate(p1.id, { certificate_ids: [b.id] }));
assert.deepEqual(offInP1.map((c) => c.active), [false]);

// --- A project's API keys (keygate's keys created in the project) ---------------------------
const native = async (path, body) => {
  const r = await fetch(`${env('KEYGATE_BASE_URL')}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env('KEYGATE_ADMIN_KEY')}` },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 201);
  return (await r.json()).data;
};
const orgPath = `/organizations/${env('KEYGATE_ORG_ID')}/api-keys`;
const k1 = await native(orgPath, { name: 'svc 1', project_id: p1.id });
const k2 = await native(orgPath, { name: 'svc 2', project_id: p1.id });
await native(orgPath, { name: 'elsewhere' });
const keys = await collect(admin.projects.apiKeys.list(p1.id, { limit: 1 }));
assert.deepEqual(keys.map((k) => [k.object, k.id, k.name]),
  [['organization.project.api_key', k1.id, 'svc 1'], ['organization.project.api_key', k2.id, 'svc 2']]);
assert.ok(keys[0].redacted_value.endsWith(k1.key_preview));
assert.equal(keys[0].owner_project_access, 'active');
const one = await admin.projects.apiKeys.retrieve(k2.id, { project_id: p1.id });
assert.equal(one.id, k2.id);
const gone = await admin.projects.apiKeys.delete(k2.id, { project_id: p1.id });
assert.deepEqual(gone, { object: 'organization.project.api_key.deleted', id: k2.id, deleted: true });
await rejects(admin.projects.apiKeys.retrieve(k2.id, { project_id: p1.id }), OpenAI.NotFoundError, 404);
assert.deepEqual((await collect(admin.projects.apiKeys.list(p1.id))).map((k) => k.id), [k1.id]);

// --- The root key names the organization (the SDK's `organization` option) ------------------
const root = new OpenAI({
  apiKey: 'unused',
  adminAPIKey: env('KEYGATE_ROOT_KEY'),
  organization: env('KEYGATE_ORG_ID'),
  baseURL: env('KEYGATE_BASE_URL'),
  maxRetries: 0,
});
const seen = await collect(root.admin.organization.projects.list({ include_archived: true }));
assert.equal(seen.length, 3);
const certs = await collect(root.admin.organization.certificates.list());
assert.deepEqual(certs.map((c) => c.id), [b.id]);

// --- The audit log: every change above, in OpenAI's shape, with each filter ----------------
const everything = await collect(admin.auditLogs.list({ limit: 7 }));  // auto-paged
const onePage = await admin.auditLogs.list({ limit: 100 });
assert.equal(onePage.has_more, false);
assert.ok(everything.length > 14, `only ${everything.length} events`);
assert.deepEqual(everything.map((e) => e.id), onePage.data.map((e) => e.id));
for (const e of everything) {
  assert.ok(e.id.startsWith('audit_'));
  assert.equal(e.actor.type, 'api_key');
  assert.ok(e[e.type], `${e.type} has its payload`);
}
const times = everything.map((e) => e.effective_at);
assert.deepEqual(times, [...times].sort((x, y) => y - x), 'newest first');
assert.equal(new Set(everything.map((e) => e.id)).size, everything.length, 'no event twice');
const kinds = new Set(everything.map((e) => e.type));
for (const t of ['certificate.created', 'certificate.updated', 'certificate.deleted',
  'certificates.activated', 'certificates.deactivated', 'project.created', 'project.updated',
  'project.archived', 'api_key.created', 'api_key.deleted'])
  assert.ok(kinds.has(t), `an event of type ${t}`);
const created = await collect(admin.auditLogs.list({ event_types: ['project.created'] }));
assert.deepEqual(created.map((e) => e['project.created'].id).sort(), [p1.id, p2.id, p3.id].sort());
const ofP1 = await collect(admin.auditLogs.list({ project_ids: [p1.id] }));
assert.ok(ofP1.length >= 3 && ofP1.every((e) => e.project?.id === p1.id));
const ofK1 = await collect(admin.auditLogs.list({ resource_ids: [k1.id] }));
assert.deepEqual(ofK1.map((e) => e.type), ['api_key.created']);
const byRoot = await collect(admin.auditLogs.list({ actor_ids: ['root'] }));
assert.ok(byRoot.every((e) => e.actor.api_key.id === 'root'));
const byTenant = await collect(admin.auditLogs.list({ actor_ids: [everything[0].actor.api_key.id] }));
assert.ok(byTenant.length > 0 && byTenant.every((e) => e.actor.api_key.id === everything[0].actor.api_key.id));
const oldest = times[times.length - 1];
const window = await collect(admin.auditLogs.list({ effective_at: { gte: oldest, lte: times[0] } }));
assert.equal(window.length, everything.length);
assert.deepEqual(await collect(admin.auditLogs.list({ effective_at: { gt: times[0] } })), []);
assert.deepEqual(await collect(admin.auditLogs.list({ effective_at: { lt: oldest } })), []);
// Paging by hand, forward with `after` and back with `before`.
const page1 = await admin.auditLogs.list({ limit: 3 });
assert.equal(page1.has_more, true);
const second = await admin.auditLogs.list({ limit: 3, after: page1.last_id });
assert.deepEqual(second.data.map((e) => e.id), everything.slice(3, 6).map((e) => e.id));
const backAgain = await admin.auditLogs.list({ limit: 3, before: second.data[0].id });
assert.deepEqual(backAgain.data.map((e) => e.id), page1.data.map((e) => e.id));
await rejects(admin.auditLogs.list({ limit: 1000 }), OpenAI.BadRequestError, 400);

// --- A wrong key is the SDK's AuthenticationError -----------------------------------------
const stranger = new OpenAI({
  apiKey: 'unused',
  adminAPIKey: 'sk_live_00000000000000000000000000000000000000',
  baseURL: env('KEYGATE_BASE_URL'),
  maxRetries: 0,
});
await rejects(stranger.admin.organization.projects.list(), OpenAI.AuthenticationError, 401);

console.log('openai sdk: every check passed');
