#include "net/response.hpp"

#include <charconv>
#include <cstring>

namespace keygate::net {

std::string_view reason_phrase(uint16_t status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

void serialize(const Response& res, bool head, bool close, std::string_view date,
               std::string& out) {
  // Measure, grow once, then copy: the status line and headers are a dozen pieces, and a
  // dozen std::string appends each check the capacity (this runs for every answer).
  char status[8], length[24];
  const size_t status_len = static_cast<size_t>(std::to_chars(status, status + sizeof status, res.status).ptr - status);
  const size_t length_len =
      static_cast<size_t>(std::to_chars(length, length + sizeof length, res.body.size()).ptr - length);
  const std::string_view reason = reason_phrase(res.status);
  const bool typed = !res.content_type.empty() && !res.body.empty();
  constexpr std::string_view kVersion = "HTTP/1.1 ", kServer = "Server: keygate\r\nDate: ",
                             kType = "Content-Type: ", kLength = "Content-Length: ", kClose = "Connection: close\r\n";
  const std::string_view body = head ? std::string_view() : std::string_view(res.body);
  const size_t size = kVersion.size() + status_len + 1 + reason.size() + 2 + kServer.size() + date.size() + 2 +
                      (typed ? kType.size() + res.content_type.size() + 2 : 0) + kLength.size() + length_len + 2 +
                      (close ? kClose.size() : 0) + res.headers.size() + 2 + body.size();
  const size_t at = out.size();
  out.resize(at + size);
  char* p = out.data() + at;
  auto put = [&p](std::string_view v) {
    if (v.empty()) return;  // a default view's data() is null, which memcpy must not get
    std::memcpy(p, v.data(), v.size());
    p += v.size();
  };
  put(kVersion);
  put({status, status_len});
  *p++ = ' ';
  put(reason);
  put("\r\n");
  put(kServer);
  put(date);
  put("\r\n");
  if (typed) {
    put(kType);
    put(res.content_type);
    put("\r\n");
  }
  put(kLength);
  put({length, length_len});
  put("\r\n");
  if (close) put(kClose);
  put(res.headers);
  put("\r\n");
  put(body);
}

}  // namespace keygate::net
