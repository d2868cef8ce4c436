// The endpoint handlers, one family per file (organizations.cpp, api_keys.cpp, verify.cpp,
// certificates.cpp, projects.cpp, ops.cpp). Each is given an Exchange whose principal is already
// authenticated when its route asks for it.
#pragma once

#include "handlers/exchange.hpp"
#include "net/task.hpp"

namespace keygate::handlers {

net::task<void> create_organization(Exchange& ex);
void list_organizations(Exchange& ex);
void get_organization(Exchange& ex);
net::task<void> update_organization(Exchange& ex);

net::task<void> create_api_key(Exchange& ex);
void list_api_keys(Exchange& ex);
void get_api_key(Exchange& ex);
net::task<void> update_api_key(Exchange& ex);
net::task<void> revoke_api_key(Exchange& ex);
net::task<void> rotate_api_key(Exchange& ex);

void verify_key(Exchange& ex);    // POST /v1/keys/verify
void forward_auth(Exchange& ex);  // GET /v1/auth

void list_certificates(Exchange& ex);
net::task<void> create_certificate(Exchange& ex);
void get_certificate(Exchange& ex);
net::task<void> update_certificate(Exchange& ex);
net::task<void> delete_certificate(Exchange& ex);
net::task<void> activate_certificates(Exchange& ex);
net::task<void> deactivate_certificates(Exchange& ex);
void list_project_certificates(Exchange& ex);
net::task<void> activate_project_certificates(Exchange& ex);
net::task<void> deactivate_project_certificates(Exchange& ex);

net::task<void> create_project(Exchange& ex);
void list_projects(Exchange& ex);
void get_project(Exchange& ex);
net::task<void> update_project(Exchange& ex);
net::task<void> archive_project(Exchange& ex);
void list_project_keys(Exchange& ex);
void get_project_key(Exchange& ex);
net::task<void> delete_project_key(Exchange& ex);

void list_audit_logs(Exchange& ex);    // GET /v1/organization/audit_logs
void list_audit_events(Exchange& ex);  // GET /v1/organizations/{id}/audit-events

void healthz(Exchange& ex);
void readyz(Exchange& ex);
void metrics(Exchange& ex);
void cluster_snapshot(Exchange& ex);
void openapi(Exchange& ex);

}  // namespace keygate::handlers
