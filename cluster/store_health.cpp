#include "cluster/store_health.hpp"

#include <algorithm>

#include "core/committer.hpp"
#include "core/log.hpp"

namespace keygate::cluster {

void StoreHealth::poll(EtcdClient& client) {
  StoreStatus s;
  std::string error;
  if (!client.status(s, error)) return;  // the freshness probe reports etcd being away
  const int64_t quota = s.quota > 0 ? s.quota : configured_quota_;
  db_size_.store(s.db_size, std::memory_order_relaxed);
  in_use_.store(s.db_size_in_use, std::memory_order_relaxed);
  quota_.store(quota, std::memory_order_relaxed);
  alarms_.store(static_cast<int>(s.alarms.size()), std::memory_order_relaxed);
  const bool nospace = std::find(s.alarms.begin(), s.alarms.end(), "NOSPACE") != s.alarms.end();
  nospace_.store(nospace, std::memory_order_relaxed);

  const bool high =
      quota > 0 && static_cast<double>(s.db_size) >= kWarnAt * static_cast<double>(quota);
  if (high != warned_) {
    warned_ = high;
    if (high)
      core::log(core::Level::warn, "etcd.quota_high",
                {{"db_size_bytes", static_cast<long long>(s.db_size)},
                 {"db_size_in_use_bytes", static_cast<long long>(s.db_size_in_use)},
                 {"quota_bytes", static_cast<long long>(quota)},
                 {"note",
                  "etcd's database is at 80 % of its quota: at 100 % etcd refuses every write "
                  "(NOSPACE). Compact and defragment it, or raise --quota-backend-bytes "
                  "(docs/operations.md, \"Sizing etcd\")"}});
    else
      core::log(core::Level::info, "etcd.quota_ok",
                {{"db_size_bytes", static_cast<long long>(s.db_size)},
                 {"quota_bytes", static_cast<long long>(quota)}});
  }
  if (!s.alarms.empty() != alarmed_) {
    alarmed_ = !s.alarms.empty();
    std::string names;
    for (const std::string& a : s.alarms) names += (names.empty() ? "" : ",") + a;
    if (alarmed_)
      core::log(core::Level::error, "etcd.alarm",
                {{"alarms", names},
                 {"note",
                  "etcd raised an alarm: with NOSPACE it refuses every write until an "
                  "operator frees space and disarms it (etcdctl alarm disarm)"}});
    else
      core::log(core::Level::info, "etcd.alarm_cleared", {});
  }
}

void StoreHealth::write_metrics(std::string& out) const {
  core::appendf(out,
                "# HELP keygate_etcd_db_size_bytes The size of etcd's database file (-1: not "
                "read yet).\n# TYPE keygate_etcd_db_size_bytes gauge\n"
                "keygate_etcd_db_size_bytes %lld\n",
                static_cast<long long>(db_size_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_etcd_db_size_in_use_bytes What of it is in use (the rest comes "
                "back with a defragmentation).\n# TYPE keygate_etcd_db_size_in_use_bytes gauge\n"
                "keygate_etcd_db_size_in_use_bytes %lld\n",
                static_cast<long long>(in_use_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_etcd_quota_bytes etcd's quota: reported by etcd 3.5+, else "
                "--etcd-quota-bytes.\n# TYPE keygate_etcd_quota_bytes gauge\n"
                "keygate_etcd_quota_bytes %lld\n",
                static_cast<long long>(quota_.load(std::memory_order_relaxed)));
  core::appendf(out,
                "# HELP keygate_etcd_alarms Alarms etcd has raised (NOSPACE stops every "
                "write).\n# TYPE keygate_etcd_alarms gauge\nkeygate_etcd_alarms %d\n",
                alarms_.load(std::memory_order_relaxed));
  core::appendf(out,
                "# HELP keygate_etcd_nospace 1 while etcd's NOSPACE alarm is raised.\n"
                "# TYPE keygate_etcd_nospace gauge\nkeygate_etcd_nospace %d\n",
                nospace_.load(std::memory_order_relaxed) ? 1 : 0);
}

}  // namespace keygate::cluster
