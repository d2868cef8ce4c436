// What a test helper does when it cannot deliver what it promised (a certificate, a
// tenant, a connection, a JSON document, a process's exit status): it fails the running
// test through GoogleTest, at the helper's own line and with the reason, and it throws,
// because its caller has nothing to go on. The failure is non-fatal so that a test of the
// helper can expect it (EXPECT_NONFATAL_FAILURE); the throw ends the test all the same.
// A helper whose outcome a test wants to judge itself (ServerProcess's start, an http()
// status) returns or throws it instead, for the test's own assertions.
#pragma once

#include <gtest/gtest.h>

#include <source_location>
#include <stdexcept>
#include <string>

namespace keygate::testing {

[[noreturn]] inline void helper_failed(const std::string& what,
                                       std::source_location at = std::source_location::current()) {
  ADD_FAILURE_AT(at.file_name(), static_cast<int>(at.line())) << what;
  throw std::runtime_error(what);
}

}  // namespace keygate::testing
