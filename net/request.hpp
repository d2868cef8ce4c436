// Request: one parsed HTTP/1.1 request. Every view points into the connection's input
// buffer and stays valid until the connection moves on to the next request.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace keygate::net {

struct PeerCertificate;  // net/tls.hpp

enum class Method : uint8_t { other, get, head, post, put, patch, del, options };

struct Header {
  std::string_view name;
  std::string_view value;
};

inline constexpr size_t kMaxHeaders = 64;

struct Request {
  Method method = Method::other;
  std::string_view method_name;
  std::string_view target;  // as sent: path and query
  std::string_view path;
  std::string_view query;  // without the '?'
  std::array<Header, kMaxHeaders> headers{};
  uint32_t header_count = 0;
  std::string_view body;
  bool keep_alive = true;
  // The transport: whether the request came over TLS, and the client certificate that
  // connection presented (null: none, or plain HTTP). Set by the connection.
  bool tls = false;
  const PeerCertificate* peer_certificate = nullptr;
  int socket = -1;  // the connection's, for peer_address()

  // The client's IP address (an IPv4 address as ::ffff:a.b.c.d), read from the socket when
  // asked (a system call: for rare paths such as a sign-up); all zero when unknown.
  std::array<uint8_t, 16> peer_address() const noexcept;

  // Case-insensitive lookup of the first header with that name; empty when absent.
  std::string_view header(std::string_view name) const noexcept;
  bool has_header(std::string_view name) const noexcept;
  // The same for several names in one pass over the headers (a hot path asking for five
  // headers walks them once, not five times): values[i] becomes the value of the first
  // header named names[i], or empty.
  template <size_t N>
  void headers_named(const std::array<std::string_view, N>& names,
                     std::array<std::string_view, N>& values) const noexcept {
    static_assert(N <= 32);
    find_headers(names.data(), values.data(), N);
  }

 private:
  void find_headers(const std::string_view* names, std::string_view* values,
                    size_t n) const noexcept;
};

bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace keygate::net
