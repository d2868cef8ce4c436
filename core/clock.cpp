#include "core/clock.hpp"

#include <chrono>
#include <cstdarg>
#include <cstdio>

namespace keygate::core {

std::string format_rfc3339(uint64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  tm t;
  gmtime_r(&secs, &t);
  char buf[32];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
  return std::string(buf, n);
}

namespace {

// Reads exactly `len` decimal digits at `pos`.
bool digits(std::string_view s, size_t pos, size_t len, int& out) {
  if (pos + len > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

[[gnu::format(printf, 1, 2)]] Unexpected<std::string> bad(const char* fmt, ...) {
  char buf[160];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  return Unexpected<std::string>(std::string(buf));
}

}  // namespace

// RFC 3339 section 5.6, "date-time": full-date "T" full-time, the T and Z in either case.
// The calendar is checked with <chrono>'s year_month_day::ok(), so a day that the month
// does not have is refused instead of rolling over into the next month (2027-02-31 is
// not 2027-03-03).
Expected<uint64_t, std::string> parse_rfc3339(std::string_view s) {
  int Y = 0, M = 0, D = 0, h = 0, m = 0, sec = 0;
  if (s.size() < 19 || !digits(s, 0, 4, Y) || s[4] != '-' || !digits(s, 5, 2, M) || s[7] != '-' ||
      !digits(s, 8, 2, D) || (s[10] != 'T' && s[10] != 't') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, m) || s[16] != ':' || !digits(s, 17, 2, sec))
    return bad("is not an RFC 3339 time such as 2030-01-01T00:00:00Z");
  if (M < 1 || M > 12) return bad("has month %02d; months are 01 to 12", M);
  const std::chrono::year_month_day date{std::chrono::year{Y},
                                         std::chrono::month{static_cast<unsigned>(M)},
                                         std::chrono::day{static_cast<unsigned>(D)}};
  if (!date.ok()) {
    const unsigned last = static_cast<unsigned>(std::chrono::year_month_day_last{
        date.year(),
        std::chrono::month_day_last{date.month()}}.day());
    return bad("has day %02d, but %04d-%02d has %u days", D, Y, M, last);
  }
  if (h > 23) return bad("has hour %02d; hours are 00 to 23", h);
  if (m > 59) return bad("has minute %02d; minutes are 00 to 59", m);
  // A leap second (:60) has no Unix time of its own, and keygate keeps Unix times.
  if (sec == 60) return bad("is a leap second (:60), which keygate cannot represent; use :59");
  if (sec > 59) return bad("has second %02d; seconds are 00 to 59", sec);

  size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    const size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return bad("has a '.' without digits after the seconds");
    int n = 0;
    for (size_t i = start; i < pos && n < 3; ++i, ++n) millis = millis * 10 + (s[i] - '0');
    while (n++ < 3) millis *= 10;  // digits past the millisecond are dropped
  }
  int offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0, om = 0;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om))
      return bad("has an offset that is not +HH:MM or -HH:MM");
    if (oh > 23 || om > 59)
      return bad("has offset %.6s; offsets are -23:59 to +23:59", s.data() + pos);
    offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return bad("has no time zone: end it with Z or an offset such as +01:00");
  }
  if (pos != s.size()) return bad("has characters after the time zone");

  using namespace std::chrono;
  const auto t = sys_days{date} + hours{h} + minutes{m} + seconds{sec} - minutes{offset_min};
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count() + millis;
  if (ms < 0) return bad("is before 1970-01-01T00:00:00Z");
  return static_cast<uint64_t>(ms);
}

}  // namespace keygate::core
