// Test helpers, not tests (see harness.cpp): a network namespace to cut an etcd member off.
#include "support/netns.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "support/check.hpp"

namespace keygate::testing {

namespace {

bool run(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace

bool NetNs::available(std::string& why) {
  static const int state = [] {
    if (::geteuid() != 0) return 1;
    if (::access("/usr/sbin/ip", X_OK) != 0) return 2;
    const std::string probe = "kgprobe" + std::to_string(::getpid());
    const bool ok = run("/usr/sbin/ip netns add " + probe) &&
                    run("/usr/sbin/ip link add " + probe + "a type veth peer name " + probe + "b");
    run("/usr/sbin/ip link del " + probe + "a");
    run("/usr/sbin/ip netns del " + probe);
    return ok ? 0 : 3;
  }();
  why = state == 1   ? "not root: network namespaces need CAP_SYS_ADMIN"
        : state == 2 ? "no /usr/sbin/ip (iproute2)"
        : state == 3 ? "this machine refuses network namespaces or veth pairs"
                     : "";
  return state == 0;
}

NetNs::NetNs() {
  static std::atomic<int> count{0};
  const int n = count++;
  const std::string id = std::to_string(::getpid() % 10000) + "x" + std::to_string(n);
  name_ = "kg" + id;
  va_ = "kga" + id;
  vb_ = "kgb" + id;
  // 10.<200 + n % 50>: one /16 per namespace of this process.
  net_ = "10." + std::to_string(200 + (::getpid() + n) % 50);
  const std::string ip = "/usr/sbin/ip ", in = ip + "netns exec " + name_ + " " + ip;
  bool ok = run(ip + "netns add " + name_) && run(in + "link set lo up");
  for (const auto& [veth, sub] : {std::pair{va_, ".0"}, std::pair{vb_, ".1"}})
    ok = ok && run(ip + "link add " + veth + " type veth peer name " + veth + "i") &&
         run(ip + "link set " + veth + "i netns " + name_) &&
         run(ip + "addr add " + net_ + sub + ".1/24 dev " + veth) &&
         run(ip + "link set " + veth + " up") &&
         run(in + "addr add " + net_ + sub + ".2/24 dev " + veth + "i") &&
         run(in + "link set " + veth + "i up");
  if (!ok) helper_failed("NetNs: cannot make namespace " + name_ + " and its veth pairs");
}

NetNs::~NetNs() {
  run("/usr/sbin/ip link del " + va_);
  run("/usr/sbin/ip link del " + vb_);
  run("/usr/sbin/ip netns del " + name_);
}

void NetNs::cut(bool on) {
  if (!run("/usr/sbin/ip link set " + va_ + (on ? " down" : " up")))
    helper_failed("NetNs: cannot set " + va_ + (on ? " down" : " up"));
}

}  // namespace keygate::testing
