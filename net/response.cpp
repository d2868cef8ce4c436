#include "net/response.hpp"

#include <charconv>

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
  char num[24];
  out.append("HTTP/1.1 ");
  auto r = std::to_chars(num, num + sizeof num, res.status);
  out.append(num, r.ptr).append(" ").append(reason_phrase(res.status)).append("\r\n");
  out.append("Server: keygate\r\nDate: ").append(date).append("\r\n");
  if (!res.content_type.empty() && !res.body.empty())
    out.append("Content-Type: ").append(res.content_type).append("\r\n");
  r = std::to_chars(num, num + sizeof num, res.body.size());
  out.append("Content-Length: ").append(num, r.ptr).append("\r\n");
  if (close) out.append("Connection: close\r\n");
  out.append(res.headers).append("\r\n");
  if (!head) out.append(res.body);
}

}  // namespace keygate::net
