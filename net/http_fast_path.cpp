// The parser's fast path (net/http_parser.hpp): a whole plain GET taken without llhttp,
// yielding exactly the Request llhttp would (tests/net/http_parser_test.cpp and the
// http_parser fuzz target check it against llhttp alone).
#include <array>
#include <bit>
#include <string_view>

#include "net/http_bytes.hpp"
#include "net/http_parser.hpp"

namespace keygate::net {

using bytes::ascii_lower;
using bytes::load;
using bytes::trim_right;

namespace {

// RFC 9110 tchar: the bytes of a header name.
constexpr auto kTokenByte = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

// The request-target bytes the fast path takes: visible ASCII but '#' (a fragment, which
// no client sends). Anything else goes to llhttp, which accepts or refuses it.
constexpr auto kTargetByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x21; c <= 0x7e; ++c) t[c] = c != '#';
  return t;
}();

// First byte of [p, end) that is not a field-value byte the fast path takes (visible ASCII,
// space, tab), or end. Eight bytes per step: a byte is out when it is below 0x20, 0x7f, or
// has its high bit set; each test stays within its byte, so no carry crosses bytes.
const char* skip_value_bytes(const char* p, const char* end) noexcept {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  for (;;) {
    while (end - p >= 8) {
      const uint64_t w = load<uint64_t>(p);
      const uint64_t low7 = w & ~kHigh;
      const uint64_t out = (w | (low7 + kOnes) | ~(low7 + (0x80 - 0x20) * kOnes)) & kHigh;
      if (out) {
        p += std::countr_zero(out) / 8;
        break;
      }
      p += 8;
    }
    while (p < end && static_cast<unsigned char>(*p) >= 0x20 &&
           static_cast<unsigned char>(*p) < 0x7f)
      ++p;
    if (p == end || *p != '\t') return p;
    ++p;  // a tab is a value byte: go on
  }
}

// Headers that decide how a message is framed or whether the connection stays open: the
// fast path leaves requests with any of them to llhttp, which implements those rules, but
// for "Connection: keep-alive", which it checks in place. The first byte is compared
// before the whole name: most headers share a length with one of these, not a first letter.
enum class Framing : uint8_t { none, connection, other };

Framing framing_header(std::string_view name) noexcept {
  auto is = [name](std::string_view framing) {
    return (name[0] | 0x20) == framing[0] && iequals(name, framing);
  };
  switch (name.size()) {
    case 6:
      return is("expect") ? Framing::other : Framing::none;
    case 7:
      return is("upgrade") ? Framing::other : Framing::none;
    case 10:
      return is("connection") ? Framing::connection : Framing::none;
    case 14:
      return is("content-length") ? Framing::other : Framing::none;
    case 16:
      return is("proxy-connection") ? Framing::other : Framing::none;
    case 17:
      return is("transfer-encoding") ? Framing::other : Framing::none;
    default:
      return Framing::none;
  }
}

}  // namespace

// The fast path: "GET <origin-form target> HTTP/1.1", then header lines "name: value" (a
// token, a colon, optional blanks, visible ASCII, spaces and tabs), then an empty line, all
// with CRLF, all in buf and within the header limit, no more than kMaxHeaders headers and
// no framing header but "Connection: keep-alive". On success the message's spans are set
// as llhttp's callbacks would set them and position_ is past it. On failure it has written
// only header spans beyond header_count_ (zero here), which llhttp's callbacks overwrite,
// and llhttp starts on the same bytes as if the fast path did not exist.
bool HttpParser::parse_simple_get(const char* buf, size_t size) noexcept {
  const char* const begin = buf + position_;
  const char* const end = begin + std::min(size - position_, limits_.max_header_bytes);
  const char* p = begin;
  constexpr std::string_view kGet = "GET /", kVersion = " HTTP/1.1\r\n";
  if (static_cast<size_t>(end - p) < kGet.size() || std::memcmp(p, kGet.data(), kGet.size()) != 0)
    return false;
  p += kGet.size() - 1;
  const char* const target = p;
  while (p < end && kTargetByte[static_cast<unsigned char>(*p)]) ++p;
  if (static_cast<size_t>(end - p) < kVersion.size() ||
      std::memcmp(p, kVersion.data(), kVersion.size()) != 0)
    return false;
  const Span url{static_cast<uint32_t>(target - buf), static_cast<uint32_t>(p - target)};
  p += kVersion.size();
  uint32_t count = 0;
  for (;;) {
    if (end - p < 2) return false;
    if (p[0] == '\r') {
      if (p[1] != '\n') return false;
      p += 2;
      break;
    }
    const char* const name = p;
    while (p < end && kTokenByte[static_cast<unsigned char>(*p)]) ++p;
    if (p == name || p == end || *p != ':') return false;
    const Framing framing = framing_header(std::string_view(name, static_cast<size_t>(p - name)));
    if (framing == Framing::other) return false;
    const Span name_span{static_cast<uint32_t>(name - buf), static_cast<uint32_t>(p - name)};
    ++p;
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    const char* const value = p;
    p = skip_value_bytes(p, end);
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || count == kMaxHeaders) return false;
    if (framing == Framing::connection &&
        !iequals(trim_right(std::string_view(value, static_cast<size_t>(p - value))), "keep-alive"))
      return false;  // "close", "upgrade", a list: llhttp's rules
    names_[count] = name_span;
    values_[count] = {static_cast<uint32_t>(value - buf), static_cast<uint32_t>(p - value)};
    ++count;
    p += 2;
  }
  url_ = url;
  header_count_ = count;
  body_ = {};
  in_message_ = headers_done_ = message_done_ = true;
  position_ = static_cast<size_t>(p - buf);
  return true;
}

}  // namespace keygate::net
