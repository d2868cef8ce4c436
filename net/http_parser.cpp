#include "net/http_parser.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <string_view>

namespace keygate::net {

namespace {

HttpParser& self(llhttp_t* p) {
  return *static_cast<HttpParser*>(p->data);
}

Method method_of(uint8_t m) {
  switch (m) {
    case HTTP_GET:
      return Method::get;
    case HTTP_HEAD:
      return Method::head;
    case HTTP_POST:
      return Method::post;
    case HTTP_PUT:
      return Method::put;
    case HTTP_PATCH:
      return Method::patch;
    case HTTP_DELETE:
      return Method::del;
    case HTTP_OPTIONS:
      return Method::options;
    default:
      return Method::other;
  }
}

std::string_view trim_right(std::string_view v) {
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

namespace {

// The eight bytes of `w` with A-Z turned into a-z (SWAR: every byte at once). Bytes of 0x80
// and above are left as they are; the additions stay within each byte, so none carries.
uint64_t ascii_lower(uint64_t w) noexcept {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const uint64_t low7 = w & ~kHigh;
  const uint64_t from_a = low7 + (0x80 - 'A') * kOnes;      // high bit: byte >= 'A'
  const uint64_t past_z = low7 + (0x80 - 'Z' - 1) * kOnes;  // high bit: byte > 'Z'
  const uint64_t upper = from_a & ~past_z & ~w & kHigh;     // high bit: 'A' <= byte <= 'Z'
  return w | (upper >> 2);                                  // 0x80 >> 2 is 0x20
}

template <typename Word>
uint64_t load(const char* p) noexcept {
  Word w;
  std::memcpy(&w, p, sizeof w);  // a fixed size: one unaligned load, not a call
  return w;
}

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

const llhttp_settings_t* HttpParser::settings() {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t v;
    llhttp_settings_init(&v);
    v.on_message_begin = &HttpParser::on_message_begin;
    v.on_url = &HttpParser::on_url;
    v.on_header_field = &HttpParser::on_header_field;
    v.on_header_field_complete = &HttpParser::on_header_field_complete;
    v.on_header_value = &HttpParser::on_header_value;
    v.on_header_value_complete = &HttpParser::on_header_value_complete;
    v.on_headers_complete = &HttpParser::on_headers_complete;
    v.on_body = &HttpParser::on_body;
    v.on_message_complete = &HttpParser::on_message_complete;
    return v;
  }();
  return &s;
}

HttpParser::HttpParser(ParserLimits limits, bool fast_path)
    : limits_(limits), fast_path_(fast_path) {
  llhttp_init(&parser_, HTTP_REQUEST, settings());
  parser_.data = this;
}

void HttpParser::extend(Span& s, const char* base, const char* at, size_t len) {
  // Pieces of one element delivered by successive parse() calls are adjacent in the
  // contiguous buffer, so extending the span is the same as concatenating them.
  if (s.len == 0) s.off = static_cast<uint32_t>(at - base);
  s.len += static_cast<uint32_t>(len);
}

int HttpParser::on_message_begin(llhttp_t* p) {
  auto& s = self(p);
  s.in_message_ = true;
  return 0;
}

int HttpParser::on_url(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  extend(s.url_, s.base_, at, len);
  if (s.url_.off + s.url_.len - s.message_start_ > s.limits_.max_header_bytes) {
    s.failure_ = Event::headers_too_large;
    return -1;
  }
  return 0;
}

int HttpParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  if (s.header_state_ != 1) {
    if (s.header_count_ == kMaxHeaders) {
      s.failure_ = Event::headers_too_large;
      return -1;
    }
    s.names_[s.header_count_] = {};
    s.values_[s.header_count_] = {};
    ++s.header_count_;
    s.header_state_ = 1;
  }
  extend(s.names_[s.header_count_ - 1], s.base_, at, len);
  return 0;
}

int HttpParser::on_header_field_complete(llhttp_t* p) {
  self(p).header_state_ = 2;
  return 0;
}

int HttpParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  auto& v = s.values_[s.header_count_ - 1];
  extend(v, s.base_, at, len);
  if (v.off + v.len - s.message_start_ > s.limits_.max_header_bytes) {
    s.failure_ = Event::headers_too_large;
    return -1;
  }
  return 0;
}

int HttpParser::on_header_value_complete(llhttp_t* p) {
  self(p).header_state_ = 0;
  return 0;
}

int HttpParser::on_headers_complete(llhttp_t* p) {
  auto& s = self(p);
  s.headers_done_ = true;
  const bool chunked = (p->flags & F_CHUNKED) != 0;
  const bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  if (has_length && p->content_length > s.limits_.max_body_bytes) {
    s.failure_ = Event::body_too_large;
    return -1;
  }
  if ((chunked || (has_length && p->content_length > 0)) && !s.continue_reported_) {
    for (uint32_t i = 0; i < s.header_count_; ++i) {
      std::string_view name(s.base_ + s.names_[i].off, s.names_[i].len);
      std::string_view value(s.base_ + s.values_[i].off, s.values_[i].len);
      if (iequals(name, "expect") && iequals(trim_right(value), "100-continue")) {
        s.expect_continue_ = true;
        return HPE_PAUSED;
      }
    }
  }
  return 0;
}

int HttpParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto& s = self(p);
  if (s.body_.len + len > s.limits_.max_body_bytes) {
    s.failure_ = Event::body_too_large;
    return -1;
  }
  if (s.body_.len == 0) {
    s.body_.off = static_cast<uint32_t>(at - s.base_);
  } else {
    // Chunked bodies arrive with chunk headers between the pieces: move each piece down
    // over bytes llhttp has already consumed, so the body stays one contiguous view.
    char* dest = s.base_ + s.body_.off + s.body_.len;
    if (dest != at) std::memmove(dest, at, len);
  }
  s.body_.len += static_cast<uint32_t>(len);
  return 0;
}

int HttpParser::on_message_complete(llhttp_t* p) {
  auto& s = self(p);
  s.message_done_ = true;
  s.request_.keep_alive = llhttp_should_keep_alive(p) != 0;
  return HPE_PAUSED;
}

HttpParser::Event HttpParser::parse(char* buf, size_t size) {
  if (failure_ != Event::need_more) return failure_;
  if (message_done_) return Event::request;
  if (fast_path_ && !in_message_ && !ended_ && parse_simple_get(buf, size)) {
    ++fast_path_requests_;
    fill_request(buf, Method::get, "GET");
    return Event::request;
  }
  base_ = buf;
  const char* start = buf + position_;
  llhttp_errno_t err = llhttp_execute(&parser_, start, size - position_);
  if (err == HPE_OK) {
    position_ = size;
    if (in_message_ && !headers_done_ && size - message_start_ > limits_.max_header_bytes)
      return failure_ = Event::headers_too_large;
    return Event::need_more;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    position_ = static_cast<size_t>(llhttp_get_error_pos(&parser_) - buf);
    if (err == HPE_PAUSED_UPGRADE) {
      // Upgrades are not supported: answer this request, then close the connection.
      llhttp_resume_after_upgrade(&parser_);
      request_.keep_alive = false;
    } else {
      llhttp_resume(&parser_);
    }
    if (message_done_) {
      const auto method = static_cast<llhttp_method_t>(llhttp_get_method(&parser_));
      fill_request(buf, method_of(method), llhttp_method_name(method));
      return Event::request;
    }
    if (expect_continue_ && !continue_reported_) {
      continue_reported_ = true;
      return Event::expect_continue;
    }
    return Event::need_more;
  }
  if (failure_ != Event::need_more) return failure_;
  error_reason_ = llhttp_get_error_reason(&parser_);
  return failure_ = Event::malformed;
}

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

void HttpParser::fill_request(const char* buf, Method method, std::string_view method_name) {
  Request& r = request_;
  r.method = method;
  r.method_name = method_name;
  r.target = std::string_view(buf + url_.off, url_.len);
  std::string_view t = r.target;
  if (t.starts_with("http://") || t.starts_with("https://")) {
    // Absolute form (RFC 9112 3.2.2): keep only the path and query.
    size_t slash = t.find('/', t.find("//") + 2);
    t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
  }
  size_t q = t.find('?');
  r.path = t.substr(0, q);
  r.query = q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
  r.header_count = header_count_;
  for (uint32_t i = 0; i < header_count_; ++i) {
    r.headers[i].name = std::string_view(buf + names_[i].off, names_[i].len);
    r.headers[i].value = values_[i].len
                             ? trim_right(std::string_view(buf + values_[i].off, values_[i].len))
                             : std::string_view();
  }
  r.body = body_.len ? std::string_view(buf + body_.off, body_.len) : std::string_view();
}

void HttpParser::next() noexcept {
  ended_ |= !request_.keep_alive;  // llhttp takes no request after one that closes
  message_start_ = position_;
  url_ = {};
  header_count_ = 0;
  header_state_ = 0;
  body_ = {};
  in_message_ = headers_done_ = message_done_ = false;
  continue_reported_ = expect_continue_ = false;
  request_.header_count = 0;
  request_.keep_alive = true;
}

void HttpParser::rebase(size_t shift) noexcept {
  auto fix = [shift](Span& s) {
    if (s.len) s.off -= static_cast<uint32_t>(shift);
  };
  message_start_ -= shift;
  position_ -= shift;
  fix(url_);
  for (uint32_t i = 0; i < header_count_; ++i) {
    fix(names_[i]);
    fix(values_[i]);
  }
  fix(body_);
}

}  // namespace keygate::net
