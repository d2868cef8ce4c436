#include "handlers/served_routes.hpp"

#include "core/index.hpp"
#include "handlers/app.hpp"
#include "handlers/idempotency.hpp"
#include "handlers/metrics.hpp"

namespace keygate::testing {

std::set<std::string> served_routes() {
  core::RcuThread rcu;
  core::Index index;
  handlers::Idempotency idem;
  handlers::Metrics metrics;
  handlers::AppContext ctx{index, idem, metrics, {}};
  handlers::App app(ctx);
  std::set<std::string> served;
  for (const auto& r : app.router().routes())
    served.insert(std::string(handlers::method_name(r.method)) + " " + std::string(r.pattern));
  return served;
}

}  // namespace keygate::testing
