// The routes the server registers, as "METHOD /pattern" (method as handlers::method_name
// spells it, GET): what the OpenAPI document and docs/api.md must both name.
#pragma once

#include <set>
#include <string>

namespace keygate::testing {

std::set<std::string> served_routes();

}  // namespace keygate::testing
