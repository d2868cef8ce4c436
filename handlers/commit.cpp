#include "handlers/commit.hpp"

#include "handlers/errors.hpp"

namespace keygate::handlers {

net::task<std::optional<core::Outcome>> commit_or_reject(Exchange& ex, core::Command command) {
  core::Outcome out = co_await commit(*ex.app.committer, std::move(command));
  if (out.error) {
    write_error(ex, out.error);
    co_return std::nullopt;
  }
  co_return std::move(out);
}

}  // namespace keygate::handlers
