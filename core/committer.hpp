// Committer: where a change goes to become durable and visible. The handlers hand it a
// command and are called back once the change is published (or refused); they never know
// which storage is behind it. The local log (persistence/journal.hpp) is the one
// implementation today; main.cpp wires it (docs: architecture, "The write path").
#pragma once

#include <string>

#include "core/audit.hpp"
#include "core/commands.hpp"

namespace keygate::core {

// One command on its way through a Committer. Owned by the submitter, which must keep it
// alive until done() has been called.
struct Submission {
  Command command;
  Actor actor;  // who asked: the audit event names it
  // The scopes of whoever asked (the root key: kEveryScope): a command may grant, or act on
  // keys holding, only these (docs/security.md, "Scopes only narrow").
  ScopeSet authority = kEveryScope;
  uint64_t submitted_ms = 0;  // set by the committer: a write is answered within its timeout
  Outcome outcome;
  void (*done)(Submission*) = nullptr;  // called once, on the committer's thread, outcome final
  void* context = nullptr;
};

class Committer {
 public:
  virtual ~Committer() = default;
  // Thread-safe. done() is called exactly once, after the change is visible to every reader
  // (or with outcome.error set and nothing changed).
  virtual void submit(Submission* s) = 0;
  // Whether changes can be made now (/readyz). Any thread.
  virtual bool writable() const noexcept = 0;
  // Appends the committer's own figures to /metrics (Prometheus text format). Any thread.
  virtual void write_metrics(std::string& out) const = 0;
};

// Appends printf-style text to `out` (a line of /metrics, say); a line is at most 511 bytes.
void appendf(std::string& out, const char* format, ...) __attribute__((format(printf, 2, 3)));

}  // namespace keygate::core
