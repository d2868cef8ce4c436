// Test helper: a real etcd cluster (Debian's etcd-server) of N members on free loopback
// ports, each with its own data directory, started by the test and stopped with it.
// Members can be stopped, killed and started again to test faults. Fails the running test
// (support/check.hpp) when etcd is missing or does not become healthy.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace keygate::testing {

class EtcdCluster {
 public:
  // `tls`: clients must speak TLS and present a certificate signed by the cluster's CA
  // (etcd's --client-cert-auth); the files are made with the openssl command.
  // `extra`: more flags for every member (--max-request-bytes, say).
  explicit EtcdCluster(int members = 3, bool tls = false, std::vector<std::string> extra = {});
  // Where each member runs: the address it listens on and advertises (client and peer),
  // and a program to run it through ("ip netns exec NAME": support/netns.hpp).
  struct Place {
    std::string host = "127.0.0.1";
    std::vector<std::string> prefix;
  };
  explicit EtcdCluster(std::vector<Place> places);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;

  // "http://127.0.0.1:P1,http://127.0.0.1:P2,..." for --etcd (each member's host).
  std::string endpoints() const;
  uint16_t client_port(int member) const { return members_[static_cast<size_t>(member)].client; }
  int size() const { return static_cast<int>(members_.size()); }

  void stop(int member);  // SIGTERM and wait
  void kill9(int member);
  // SIGSTOP: the member hangs, its connections open and silent, as a member whose host
  // stalls; thaw() (SIGCONT) lets it go on.
  void freeze(int member);
  void thaw(int member);
  // "http://127.0.0.1:P" of one member, and all of them with that one first (a node given
  // this list talks to, and watches, that member first).
  std::string endpoint(int member) const;
  std::string endpoints_from(int member) const;
  // Again, on its data directory; with `wait`, until the cluster is healthy (which needs a
  // quorum of members running).
  void start(int member, bool wait = true);
  // Waits until every running member answers /health with true (30 s at most); fails the
  // test with the members' logs when one exits or the time runs out.
  void wait_healthy();
  // The member that is the Raft leader now (-1 if none answers).
  int leader() const;
  // With tls: the CA, and a client certificate and key that etcd accepts.
  std::string ca_file() const { return root_ + "/ca.pem"; }
  std::string cert_file() const { return root_ + "/client.pem"; }
  std::string key_file() const { return root_ + "/client.key"; }

 private:
  struct Member {
    std::string name, dir;
    Place place;
    uint16_t client = 0, peer = 0;
    pid_t pid = -1;
  };
  std::string root_;
  std::string initial_cluster_;
  std::vector<Member> members_;
  bool started_once_ = false;
  bool tls_ = false;
  std::vector<std::string> extra_;
  bool healthy(const Member& m) const;
  struct Unhealthy {
    std::string why;      // empty: every running member is healthy
    bool exited = false;  // a member exited (it could not bind its port, say)
  };
  Unhealthy await_healthy();  // wait_healthy(), without failing the test
  void init(std::vector<Place> places);
  std::string url(const Member& m) const;  // its client URL
};

// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range
// (so no test's outgoing connection takes it before its program binds it), never the same
// twice in one process.
uint16_t free_port();

}  // namespace keygate::testing
