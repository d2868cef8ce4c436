#include "core/log.hpp"

#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

#include "core/clock.hpp"
#include "core/json_writer.hpp"

namespace keygate::core {

void log(Level level, std::string_view event, std::initializer_list<LogField> fields) {
  std::string line;
  line.reserve(256);
  JsonWriter w(line);
  const uint64_t ms = now_ms();
  const time_t secs = static_cast<time_t>(ms / 1000);
  tm t;
  gmtime_r(&secs, &t);
  char ts[40];
  const size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &t);
  std::snprintf(ts + n, sizeof ts - n, ".%03uZ", static_cast<unsigned>(ms % 1000));
  w.begin_object()
      .field("ts", std::string_view(ts))
      .field("level", level == Level::info   ? "info"
                      : level == Level::warn ? "warn"
                                             : "error")
      .field("event", event);
  for (const auto& [k, v] : fields) {
    w.key(k);
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string_view>)
            w.string(x);
          else if constexpr (std::is_same_v<T, bool>)
            w.boolean(x);
          else if constexpr (std::is_same_v<T, long long>)
            w.number(static_cast<int64_t>(x));
          else if constexpr (std::is_same_v<T, unsigned long long>)
            w.number(static_cast<uint64_t>(x));
          else
            w.number(x);
        },
        v);
  }
  w.end_object();
  line.push_back('\n');
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

}  // namespace keygate::core
