// Test support for the persistence units: a scratch directory, and a Store that runs
// commands through a real Journal on it, as the server would (recovery first).
#pragma once

#include <stdlib.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "core/index.hpp"
#include "core/state_machine.hpp"
#include "persistence/data_dir.hpp"
#include "persistence/journal.hpp"
#include "persistence/recovery.hpp"

namespace keygate::persistence {

inline std::string temp_dir() {
  char tmpl[] = "/tmp/keygate-recovery-XXXXXX";
  return mkdtemp(tmpl);
}

// Runs commands through a real journal on `path`, as the server would.
struct Store {
  std::string path;
  core::RcuThread rcu;
  std::unique_ptr<DataDir> dir;
  std::unique_ptr<core::Index> index;
  std::unique_ptr<core::StateMachine> sm;
  std::unique_ptr<Journal> journal;
  RecoveryReport report;

  explicit Store(std::string p, JournalOptions o = {}) : path(std::move(p)) {
    dir = std::make_unique<DataDir>(path);
    index = std::make_unique<core::Index>();
    sm = std::make_unique<core::StateMachine>(*index);
    report = recover(*dir, *sm, RecoverMode::start);
    journal = std::make_unique<Journal>(*dir, *sm, report, o);
    journal->start();
  }
  ~Store() { journal->stop(); }

  core::Outcome run(core::Command c) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    Journal::Submission s;
    s.command = std::move(c);
    struct Ctx {
      std::mutex* m;
      std::condition_variable* cv;
      bool* done;
    } ctx{&m, &cv, &done};
    s.context = &ctx;
    s.done = [](Journal::Submission* sub) {
      auto* c = static_cast<Ctx*>(sub->context);
      std::lock_guard l(*c->m);
      *c->done = true;
      c->cv->notify_one();
    };
    journal->submit(&s);
    std::unique_lock l(m);
    cv.wait(l, [&] { return done; });
    return std::move(s.outcome);
  }
};

}  // namespace keygate::persistence
