// Response: what a handler fills in for one request. Connection-owned and reused, so
// after the first few requests on a connection, answering one allocates nothing.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace keygate::net {

struct Response {
  uint16_t status = 200;
  std::string_view content_type = "application/json";
  std::string headers;  // extra header lines, each "Name: value\r\n"
  std::string body;
  bool close = false;   // close the connection after this response

  // One resize and two copies rather than four appends, each checking its capacity: the
  // verification answer carries eight of these.
  void add_header(std::string_view name, std::string_view value) {
    const size_t at = headers.size();
    headers.resize(at + name.size() + value.size() + 4);
    char* p = headers.data() + at;
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    *p++ = ':';
    *p++ = ' ';
    if (!value.empty()) std::memcpy(p, value.data(), value.size());
    p += value.size();
    *p++ = '\r';
    *p = '\n';
  }
  void reset() {
    status = 200;
    content_type = "application/json";
    headers.clear();
    body.clear();
    close = false;
  }
};

// Why a request never reached a handler: the server answers it itself and closes.
enum class ProtocolError : uint8_t { malformed, headers_too_large, body_too_large, timeout };

std::string_view reason_phrase(uint16_t status) noexcept;

// Appends the status line, headers and (unless `head`) body of `res` to `out`.
void serialize(const Response& res, bool head, bool close, std::string_view date, std::string& out);

}  // namespace keygate::net
