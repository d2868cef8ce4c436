// Request's header lookups: case-insensitive, eight bytes at a time.
#include "net/request.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <bit>
#include <cstring>
#include <string_view>

#include "net/http_bytes.hpp"

namespace keygate::net {

using bytes::ascii_lower;
using bytes::load;

// Eight bytes per step, the tail as one more (overlapping) word: the headers that the hot
// path looks up are 9 to 20 bytes long.
bool iequals(std::string_view a, std::string_view b) noexcept {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char *x = a.data(), *y = b.data();
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8)
      if (ascii_lower(load<uint64_t>(x + i)) != ascii_lower(load<uint64_t>(y + i))) return false;
    return ascii_lower(load<uint64_t>(x + n - 8)) == ascii_lower(load<uint64_t>(y + n - 8));
  }
  if (n >= 4)
    return ascii_lower(load<uint32_t>(x) | load<uint32_t>(x + n - 4) << 32) ==
           ascii_lower(load<uint32_t>(y) | load<uint32_t>(y + n - 4) << 32);
  for (size_t i = 0; i < n; ++i)
    if (ascii_lower(static_cast<unsigned char>(x[i])) !=
        ascii_lower(static_cast<unsigned char>(y[i])))
      return false;
  return true;
}

std::string_view Request::header(std::string_view name) const noexcept {
  for (uint32_t i = 0; i < header_count; ++i)
    if (iequals(headers[i].name, name)) return headers[i].value;
  return {};
}

bool Request::has_header(std::string_view name) const noexcept {
  for (uint32_t i = 0; i < header_count; ++i)
    if (iequals(headers[i].name, name)) return true;
  return false;
}

void Request::find_headers(const std::string_view* names, std::string_view* values,
                           size_t n) const noexcept {
  // by_length[L]: the names of length L, one bit each, so that a header is compared only
  // with names of its own length (most headers of a request match none).
  constexpr size_t kLongest = 32;
  uint32_t by_length[kLongest + 1] = {};
  uint32_t wanted = 0;
  for (size_t i = 0; i < n; ++i) {
    if (names[i].size() > kLongest) {
      values[i] = header(names[i]);  // a long name: the plain search
      continue;
    }
    values[i] = {};
    by_length[names[i].size()] |= uint32_t{1} << i;
    wanted |= uint32_t{1} << i;
  }
  for (uint32_t h = 0; h < header_count && wanted; ++h) {
    const Header& header = headers[h];
    if (header.name.size() > kLongest) continue;
    for (uint32_t m = by_length[header.name.size()] & wanted; m; m &= m - 1) {
      const int i = std::countr_zero(m);
      if (!iequals(header.name, names[i])) continue;
      values[i] = header.value;
      wanted &= ~(uint32_t{1} << i);  // the first of each name counts
      break;
    }
  }
}

std::array<uint8_t, 16> Request::peer_address() const noexcept {
  std::array<uint8_t, 16> out{};
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (socket < 0 || ::getpeername(socket, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return out;
  if (ss.ss_family == AF_INET6) {
    std::memcpy(out.data(), &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, 16);
  } else if (ss.ss_family == AF_INET) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, 4);
  }
  return out;
}

}  // namespace keygate::net
