// commit(): hands a command to the Committer (core/committer.hpp) and suspends the calling
// connection's coroutine until the change is durable and visible (or refused). The
// committer completes on its own thread; the coroutine resumes on its reactor.
#pragma once

#include <coroutine>
#include <optional>

#include "core/commands.hpp"
#include "core/committer.hpp"
#include "handlers/exchange.hpp"
#include "net/reactor.hpp"
#include "net/task.hpp"

namespace keygate::handlers {

class CommitAwaiter {
 public:
  CommitAwaiter(core::Committer& committer, core::Command command, core::Actor actor,
                core::ScopeSet authority)
      : committer_(committer) {
    submission_.command = std::move(command);
    submission_.actor = actor;
    submission_.authority = authority;
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    reactor_ = net::Reactor::current();
    submission_.context = this;
    submission_.done = [](core::Submission* s) {
      auto* self = static_cast<CommitAwaiter*>(s->context);
      self->reactor_->post(self->handle_);
    };
    committer_.submit(&submission_);
  }
  core::Outcome await_resume() { return std::move(submission_.outcome); }

 private:
  core::Committer& committer_;
  core::Submission submission_;
  net::Reactor* reactor_ = nullptr;
  std::coroutine_handle<> handle_;
};

inline CommitAwaiter commit(core::Committer& committer, core::Command command, core::Actor actor,
                            core::ScopeSet authority) {
  return CommitAwaiter(committer, std::move(command), actor, authority);
}

// Who the audit log names for a change the principal asks for (core/audit.hpp).
core::Actor actor_of(const Principal& p) noexcept;
// What the principal may grant (core::Submission::authority): the root key everything, an
// anonymous sign-up nothing beyond the new organization's own first key.
core::ScopeSet authority_of(const Principal& p) noexcept;

// Commits `command` for the exchange; when the writer refuses it (or the log cannot take
// it), writes that error as the response and returns nullopt.
net::task<std::optional<core::Outcome>> commit_or_reject(Exchange& ex, core::Command command);

}  // namespace keygate::handlers
