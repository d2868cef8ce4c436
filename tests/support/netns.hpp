// Test helper: a network namespace joined to the test's by two veth pairs, so that a
// process inside (an etcd member, a node) can be cut off from the others on one link while
// the test still reaches it on the other:
//   link "a" (cut()):  10.N.0.1 here  <->  10.N.0.2 inside
//   link "b" (never):  10.N.1.1 here  <->  10.N.1.2 inside
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2: available() says whether this
// machine allows it, so that a test can skip with the reason instead of failing.
#pragma once

#include <string>
#include <vector>

namespace keygate::testing {

class NetNs {
 public:
  // Whether namespaces and veth pairs can be made here (tried once, then remembered).
  static bool available(std::string& why);

  NetNs();  // fails the running test (support/check.hpp) when it cannot be made
  ~NetNs();
  NetNs(const NetNs&) = delete;

  // Runs a program inside: put before its argv.
  std::vector<std::string> exec_prefix() const { return {"/usr/sbin/ip", "netns", "exec", name_}; }
  // Addresses on link a (cut by cut()) and link b (never cut), here and inside.
  std::string a_here() const { return net_ + ".0.1"; }
  std::string a_inside() const { return net_ + ".0.2"; }
  std::string b_here() const { return net_ + ".1.1"; }
  std::string b_inside() const { return net_ + ".1.2"; }
  // Link a down (packets dropped, no reset: the other side hears nothing) or up again.
  void cut(bool on);

 private:
  std::string name_, net_, va_, vb_;
};

}  // namespace keygate::testing
