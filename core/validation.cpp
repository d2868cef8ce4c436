#include "core/validation.hpp"

namespace keygate::core {

std::string derive_slug(std::string_view name) {
  std::string slug;
  bool dash = false;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      if (dash && !slug.empty()) slug.push_back('-');
      dash = false;
      slug.push_back(c);
    } else {
      dash = true;
    }
    if (slug.size() >= 64) break;
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  return slug;
}

bool valid_slug(std::string_view slug) noexcept {
  if (slug.empty() || slug.size() > 64) return false;
  for (char c : slug)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

bool valid_name(std::string_view name) noexcept {
  size_t code_points = 0;
  for (unsigned char c : name) code_points += (c & 0xC0) != 0x80;
  bool blank = true;
  for (char c : name) blank = blank && (c == ' ' || c == '\t' || c == '\n' || c == '\r');
  return code_points >= 1 && code_points <= 200 && !blank;
}

bool valid_certificate_name(std::string_view name) noexcept {
  size_t code_points = 0;
  for (unsigned char c : name) code_points += (c & 0xC0) != 0x80;
  return code_points <= 200;
}

namespace {

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

// Splits "scheme://host[:port]" into its parts; false when it is not of that shape.
bool split_origin(std::string_view o, std::string_view& scheme, std::string_view& host,
                  std::string_view& port) {
  size_t sep = o.find("://");
  if (sep == std::string_view::npos) return false;
  scheme = o.substr(0, sep);
  std::string_view rest = o.substr(sep + 3);
  size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos) {
    port = rest.substr(colon + 1);
    host = rest.substr(0, colon);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port)
      if (c < '0' || c > '9') return false;
  } else {
    host = rest;
    port = {};
  }
  return !host.empty();
}

}  // namespace

bool valid_origin_pattern(std::string_view p) noexcept {
  std::string_view scheme, host, port;
  if (!split_origin(p, scheme, host, port)) return false;
  if (scheme != "https" && scheme != "http") return false;
  if (host.starts_with("*.")) host.remove_prefix(2);
  if (host.empty() || host.front() == '.' || host.back() == '.' ||
      host.find("..") != std::string_view::npos)
    return false;
  for (char c : host)
    if (!host_char(c)) return false;
  return true;
}

bool origin_matches(std::string_view pattern, std::string_view origin) noexcept {
  if (pattern == origin) return true;
  std::string_view ps, ph, pp, os, oh, op;
  if (!split_origin(pattern, ps, ph, pp) || !ph.starts_with("*.")) return false;
  if (!split_origin(origin, os, oh, op) || ps != os || pp != op) return false;
  std::string_view suffix = ph.substr(1);  // ".example.com"
  if (oh.size() <= suffix.size() || !oh.ends_with(suffix)) return false;
  std::string_view label = oh.substr(0, oh.size() - suffix.size());
  return label.find('.') == std::string_view::npos;
}

}  // namespace keygate::core
