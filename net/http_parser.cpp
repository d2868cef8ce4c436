#include "net/http_parser.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "net/http_bytes.hpp"

namespace keygate::net {

using bytes::trim_right;

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

}  // namespace

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
  // Nothing new (a connection whose buffer is empty, perhaps not even allocated: `buf` may
  // be null, and llhttp would compute null + 0, undefined in C).
  if (size == position_) return Event::need_more;
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
