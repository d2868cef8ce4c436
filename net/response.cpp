#include "net/response.hpp"

#include <unistd.h>

#include <charconv>

namespace keygate::net {

std::string_view reason_phrase(uint16_t status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

void FileBody::close() noexcept {
  if (fd >= 0) ::close(fd);
  fd = -1;
  size = 0;
}

void serialize(const Response& res, bool head, bool close, std::string_view date,
               std::string& out) {
  char status[8], length[24];
  const std::string_view status_text(
      status,
      static_cast<size_t>(std::to_chars(status, status + sizeof status, res.status).ptr - status));
  const uint64_t body_size = res.body.size() + res.file.size;
  const std::string_view length_text(
      length,
      static_cast<size_t>(std::to_chars(length, length + sizeof length, body_size).ptr - length));
  std::string_view pieces[14];  // the most an answer has: with a type and a body
  size_t n = 0;
  pieces[n++] = "HTTP/1.1 ";
  pieces[n++] = status_text;
  pieces[n++] = " ";
  pieces[n++] = reason_phrase(res.status);
  pieces[n++] = "\r\nServer: keygate\r\nDate: ";
  pieces[n++] = date;
  if (!res.content_type.empty() && body_size > 0) {
    pieces[n++] = "\r\nContent-Type: ";
    pieces[n++] = res.content_type;
  }
  pieces[n++] = "\r\nContent-Length: ";
  pieces[n++] = length_text;
  pieces[n++] = close ? "\r\nConnection: close\r\n" : "\r\n";
  pieces[n++] = res.headers;
  pieces[n++] = "\r\n";
  if (!head) pieces[n++] = res.body;
  append_pieces(out, pieces, n);
}

}  // namespace keygate::net
