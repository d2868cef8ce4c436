// What a test helper does when it cannot deliver what it promised (a certificate, a
// tenant, a connection, a JSON document): it fails the running test there and then,
// through GoogleTest, with the reason; and it throws, because its caller has nothing to
// go on. A helper whose outcome a test wants to judge itself (ServerProcess's start, an
// http() status) returns or throws it instead, for the test's own assertions.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace keygate::testing {

[[noreturn]] inline void helper_failed(const std::string& what) {
  ADD_FAILURE() << what;
  throw std::runtime_error(what);
}

}  // namespace keygate::testing
