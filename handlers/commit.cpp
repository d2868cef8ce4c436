#include "handlers/commit.hpp"

#include "handlers/errors.hpp"

namespace keygate::handlers {

core::Actor actor_of(const Principal& p) noexcept {
  if (!p.authenticated) return {core::ActorKind::signup, {}};
  if (p.root) return {core::ActorKind::root, {}};
  return {core::ActorKind::api_key, p.key};
}

core::ScopeSet authority_of(const Principal& p) noexcept {
  return p.root ? core::kEveryScope : p.authenticated ? p.scopes : 0;
}

net::task<std::optional<core::Outcome>> commit_or_reject(Exchange& ex, core::Command command) {
  core::Outcome out = co_await commit(*ex.app.committer, std::move(command), actor_of(ex.principal),
                                      authority_of(ex.principal));
  if (out.error) {
    write_error(ex, out.error);
    co_return std::nullopt;
  }
  co_return std::move(out);
}

}  // namespace keygate::handlers
