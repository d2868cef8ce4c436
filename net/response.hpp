// Response: what a handler fills in for one request. Connection-owned and reused, so
// after the first few requests on a connection, answering one allocates nothing.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace keygate::net {

// Most pieces of an answer are a few bytes long: two overlapping fixed-size moves copy
// them without a call to memcpy. Nothing is read or written outside [s, s+n) and [d, d+n);
// n == 0 touches nothing (a default view's data() is null).
template <typename Word>
inline void copy_two_words(char* d, const char* s,
                           size_t n) noexcept {  // sizeof(Word) <= n <= 2 * sizeof(Word)
  Word head, tail;
  std::memcpy(&head, s, sizeof(Word));
  std::memcpy(&tail, s + n - sizeof(Word), sizeof(Word));
  std::memcpy(d, &head, sizeof(Word));
  std::memcpy(d + n - sizeof(Word), &tail, sizeof(Word));
}
inline void copy_bytes(char* d, const char* s, size_t n) noexcept {
  if (n >= 16)
    std::memcpy(d, s, n);
  else if (n >= 8)
    copy_two_words<uint64_t>(d, s, n);
  else if (n >= 4)
    copy_two_words<uint32_t>(d, s, n);
  else
    for (size_t i = 0; i < n; ++i) d[i] = s[i];
}

// Appends the pieces in order with one growth of `out` and one copy each: an answer is a
// dozen pieces, and as many std::string appends would each check the capacity (this runs
// for every answer and every header of it).
inline void append_pieces(std::string& out, const std::string_view* pieces, size_t n) {
  size_t size = 0;
  for (size_t i = 0; i < n; ++i) size += pieces[i].size();
  const size_t at = out.size();
  out.resize(at + size);
  char* p = out.data() + at;
  for (size_t i = 0; i < n; ++i) {
    copy_bytes(p, pieces[i].data(), pieces[i].size());
    p += pieces[i].size();
  }
}
inline void append_pieces(std::string& out, std::initializer_list<std::string_view> pieces) {
  append_pieces(out, pieces.begin(), pieces.size());
}

// A body read from an open file after the answer's head, a chunk at a time (a node's
// snapshot for a joining peer: gigabytes at 10 M keys, which must neither sit whole in
// memory nor wait to be read whole before the first byte leaves). Owns the descriptor.
struct FileBody {
  int fd = -1;
  uint64_t size = 0;
  FileBody() = default;
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  ~FileBody() { close(); }
  void set(int file, uint64_t bytes) noexcept {
    close();
    fd = file;
    size = bytes;
  }
  void close() noexcept;  // net/response.cpp
};

struct Response {
  uint16_t status = 200;
  std::string_view content_type = "application/json";
  std::string headers;  // extra header lines, each "Name: value\r\n"
  std::string body;
  FileBody file;       // sent after `body` when set (Connection::run)
  bool close = false;  // close the connection after this response

  void add_header(std::string_view name, std::string_view value) {
    append_pieces(headers, {name, ": ", value, "\r\n"});
  }
  void reset() {
    status = 200;
    content_type = "application/json";
    headers.clear();
    body.clear();
    file.close();
    close = false;
  }
};

// Why a request never reached a handler: the server answers it itself and closes.
// `overloaded`: the
// request did not fit in the server's receive-buffer budget (net/buffer_budget.hpp).
enum class ProtocolError : uint8_t {
  malformed,
  headers_too_large,
  body_too_large,
  timeout,
  overloaded
};

std::string_view reason_phrase(uint16_t status) noexcept;

// Appends the status line, headers and (unless `head`) body of `res` to `out`.
void serialize(const Response& res, bool head, bool close, std::string_view date, std::string& out);

}  // namespace keygate::net
