// Shape rules for organization and key fields (docs/api.md §3 and §4), shared by the
// handlers that check input and by verification, which matches origins.
#pragma once

#include <string>
#include <string_view>

namespace keygate::core {

// "Acme Corp" -> "acme-corp": lowercase [a-z0-9-], runs of anything else become one '-',
// trimmed, at most 64 characters. Empty when nothing usable is left.
std::string derive_slug(std::string_view name);
bool valid_slug(std::string_view slug) noexcept;
// Name: 1..200 characters (code points) after trimming nothing: the caller gets what it sent.
bool valid_name(std::string_view name) noexcept;
// A certificate's optional name: at most 200 characters, and may be empty (as OpenAI's).
bool valid_certificate_name(std::string_view name) noexcept;

// Bounds on a publishable key's allowed origins (docs/api.md §4): verification compares a
// request's Origin with each of them, so their number and size bound its cost.
inline constexpr size_t kMaxOriginsPerKey = 32;
inline constexpr size_t kMaxOriginBytes = 270;  // "https://" + a 253-byte host + ":65535"

// An allowed origin: "scheme://host[:port]" with an http(s) scheme, lowercase host, no path;
// the host may start with one wildcard label "*.": https://*.example.com.
bool valid_origin_pattern(std::string_view pattern) noexcept;
// Hot path: does the request's Origin match the pattern? (a wildcard stands for exactly one
// label: https://*.example.com matches https://app.example.com, not https://example.com
// nor https://a.b.example.com).
bool origin_matches(std::string_view pattern, std::string_view origin) noexcept;

}  // namespace keygate::core
