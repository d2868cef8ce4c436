// HttpParser: an incremental HTTP/1.1 request parser over a connection's contiguous input
// buffer, built on llhttp. It keeps offsets rather than pointers, so the buffer may grow or
// be compacted between calls; it de-chunks chunked bodies in place, so a body is always one
// contiguous view. One parser per connection; not thread-safe.
//
// The requests a gateway sends most (a whole GET, no body, no header that changes how the
// message is framed or kept alive) go through a strict parser of that one shape first,
// without llhttp; anything it does not take whole (another method, a split read, an odd
// byte, Content-Length, Connection, ...) is left untouched for llhttp. It takes a subset
// of what llhttp accepts and yields the same Request, which a differential test checks.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>

#include "net/request.hpp"

namespace keygate::net {

struct ParserLimits {
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
};

class HttpParser {
 public:
  enum class Event : uint8_t {
    need_more,          // everything given was consumed; no complete request yet
    request,            // a complete request; read it with request(), then call next()
    expect_continue,    // headers of a request with "Expect: 100-continue" whose body is still to
                        // come
    headers_too_large,  // 431
    body_too_large,     // 413
    malformed,          // 400: the connection must be closed
  };

  // `fast_path` false: every request goes through llhttp (the differential test's reference).
  explicit HttpParser(ParserLimits limits = {}, bool fast_path = true);
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // Parses buf[position() .. size). On `request`, request() holds views into buf.
  Event parse(char* buf, size_t size);
  const Request& request() const noexcept { return request_; }
  Request& request() noexcept { return request_; }
  // Moves past the request just returned; the next parse() starts the following one.
  void next() noexcept;

  // Offset in the buffer where the request being parsed starts: bytes before it may be
  // discarded; rebase() must then be told how far the rest moved.
  size_t message_start() const noexcept { return message_start_; }
  size_t position() const noexcept { return position_; }
  void rebase(size_t shift) noexcept;

  // True once any byte of a request has been seen and it is not complete yet.
  bool in_message() const noexcept { return in_message_; }
  bool headers_complete() const noexcept { return headers_done_; }
  const char* error_reason() const noexcept { return error_reason_; }
  // How many requests the fast path took whole (the rest went through llhttp).
  uint64_t fast_path_requests() const noexcept { return fast_path_requests_; }

 private:
  struct Span {
    uint32_t off = 0;
    uint32_t len = 0;
  };
  static int on_message_begin(llhttp_t*);
  static int on_url(llhttp_t*, const char*, size_t);
  static int on_header_field(llhttp_t*, const char*, size_t);
  static int on_header_field_complete(llhttp_t*);
  static int on_header_value(llhttp_t*, const char*, size_t);
  static int on_header_value_complete(llhttp_t*);
  static int on_headers_complete(llhttp_t*);
  static int on_body(llhttp_t*, const char*, size_t);
  static int on_message_complete(llhttp_t*);
  static const llhttp_settings_t* settings();

  bool parse_simple_get(const char* buf, size_t size) noexcept;
  void fill_request(const char* buf, Method method, std::string_view method_name);
  static void extend(Span& s, const char* base, const char* at, size_t len);

  llhttp_t parser_;
  ParserLimits limits_;
  char* base_ = nullptr;  // valid only during parse()
  size_t message_start_ = 0;
  size_t position_ = 0;
  Span url_;
  Span names_[kMaxHeaders];
  Span values_[kMaxHeaders];
  uint32_t header_count_ = 0;
  uint8_t header_state_ = 0;  // 0: between headers, 1: in a name, 2: in a value
  Span body_;
  bool in_message_ = false;
  bool headers_done_ = false;
  bool message_done_ = false;
  bool continue_reported_ = false;
  bool expect_continue_ = false;
  bool fast_path_;
  bool ended_ = false;  // a request without keep-alive was returned: what follows is llhttp's
  Event failure_ = Event::need_more;
  uint64_t fast_path_requests_ = 0;
  const char* error_reason_ = nullptr;
  Request request_;
};

}  // namespace keygate::net
