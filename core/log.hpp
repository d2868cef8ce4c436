// Structured logging: one JSON object per line on stdout (journald keeps it as is).
// Thread-safe; never on the hot path; never given a secret.
#pragma once

#include <initializer_list>
#include <string_view>
#include <utility>
#include <variant>

namespace keygate::core {

enum class Level { info, warn, error };

using LogValue = std::variant<std::string_view, long long, unsigned long long, double, bool>;
using LogField = std::pair<std::string_view, LogValue>;

void log(Level level, std::string_view event, std::initializer_list<LogField> fields = {});

}  // namespace keygate::core
